//! Floating point: the n-body simulation (Computer Language Benchmarks Game style).
const PI: f64 = std::f64::consts::PI;
const SOLAR_MASS: f64 = 4.0 * PI * PI;
const DAYS_PER_YEAR: f64 = 365.24;

#[derive(Clone, Copy)]
struct Body { x: [f64; 3], v: [f64; 3], m: f64 }

fn bodies() -> Vec<Body> {
    let d = DAYS_PER_YEAR;
    vec![
        Body { x: [0.0; 3], v: [0.0; 3], m: SOLAR_MASS },
        Body { x: [4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01],
               v: [1.66007664274403694e-03 * d, 7.69901118419740425e-03 * d, -6.90460016972063023e-05 * d], m: 9.54791938424326609e-04 * SOLAR_MASS },
        Body { x: [8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01],
               v: [-2.76742510726862411e-03 * d, 4.99852801234917238e-03 * d, 2.30417297573763929e-05 * d], m: 2.85885980666130812e-04 * SOLAR_MASS },
        Body { x: [1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01],
               v: [2.96460137564761618e-03 * d, 2.37847173959480950e-03 * d, -2.96589568540237556e-05 * d], m: 4.36624404335156298e-05 * SOLAR_MASS },
        Body { x: [1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01],
               v: [2.68067772490389322e-03 * d, 1.62824170038242295e-03 * d, -9.51592254519715870e-05 * d], m: 5.15138902046611451e-05 * SOLAR_MASS },
    ]
}

fn energy(b: &[Body]) -> f64 {
    let mut e = 0.0;
    for i in 0..b.len() {
        e += 0.5 * b[i].m * b[i].v.iter().map(|v| v * v).sum::<f64>();
        for j in i + 1..b.len() {
            let d: f64 = (0..3).map(|k| (b[i].x[k] - b[j].x[k]).powi(2)).sum::<f64>().sqrt();
            e -= b[i].m * b[j].m / d;
        }
    }
    e
}

fn advance(b: &mut [Body], dt: f64) {
    for i in 0..b.len() {
        for j in i + 1..b.len() {
            let dx = [b[i].x[0] - b[j].x[0], b[i].x[1] - b[j].x[1], b[i].x[2] - b[j].x[2]];
            let d2 = dx[0] * dx[0] + dx[1] * dx[1] + dx[2] * dx[2];
            let mag = dt / (d2 * d2.sqrt());
            let (mi, mj) = (b[i].m, b[j].m);
            for k in 0..3 {
                b[i].v[k] -= dx[k] * mj * mag;
                b[j].v[k] += dx[k] * mi * mag;
            }
        }
    }
    for body in b.iter_mut() {
        for k in 0..3 {
            body.x[k] += dt * body.v[k];
        }
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let mut b = bodies();
    let mut p = [0.0; 3];
    for body in &b {
        for k in 0..3 {
            p[k] += body.v[k] * body.m;
        }
    }
    for k in 0..3 {
        b[0].v[k] = -p[k] / SOLAR_MASS;
    }
    let e0 = energy(&b);
    for _ in 0..n {
        advance(&mut b, 0.01);
    }
    println!("{:.9} {:.9}", e0, energy(&b));
}
