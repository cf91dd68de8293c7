//! A parser: a small JSON parser (our own) over a generated document, plus a re-serialisation.
#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] as char).is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'n' => { self.i += 4; Json::Null }
            b't' => { self.i += 4; Json::Bool(true) }
            b'f' => { self.i += 5; Json::Bool(false) }
            b'"' => Json::Str(self.string()),
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    self.ws();
                    if self.s[self.i] == b']' { self.i += 1; break; }
                    v.push(self.value());
                    self.ws();
                    if self.s[self.i] == b',' { self.i += 1; }
                }
                Json::Arr(v)
            }
            b'{' => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    self.ws();
                    if self.s[self.i] == b'}' { self.i += 1; break; }
                    let k = self.string();
                    self.ws();
                    self.i += 1; // ':'
                    v.push((k, self.value()));
                    self.ws();
                    if self.s[self.i] == b',' { self.i += 1; }
                }
                Json::Obj(v)
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    self.i += 1;
                }
                Json::Num(std::str::from_utf8(&self.s[start..self.i]).unwrap().parse().unwrap())
            }
        }
    }
    fn string(&mut self) -> String {
        self.i += 1;
        let mut out = String::new();
        while self.s[self.i] != b'"' {
            if self.s[self.i] == b'\\' {
                self.i += 1;
                out.push(match self.s[self.i] { b'n' => '\n', b't' => '\t', c => c as char });
            } else {
                out.push(self.s[self.i] as char);
            }
            self.i += 1;
        }
        self.i += 1;
        out
    }
}

fn write(j: &Json, out: &mut String) {
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(&format!("{n}")),
        Json::Str(s) => { out.push('"'); out.push_str(s); out.push('"'); }
        Json::Arr(v) => { out.push('['); for (i, x) in v.iter().enumerate() { if i > 0 { out.push(','); } write(x, out); } out.push(']'); }
        Json::Obj(v) => { out.push('{'); for (i, (k, x)) in v.iter().enumerate() { if i > 0 { out.push(','); } out.push('"'); out.push_str(k); out.push_str("\":"); write(x, out); } out.push('}'); }
    }
}

fn sum(j: &Json) -> f64 {
    match j {
        Json::Num(n) => *n,
        Json::Arr(v) => v.iter().map(sum).sum(),
        Json::Obj(v) => v.iter().map(|(_, x)| sum(x)).sum(),
        Json::Bool(true) => 1.0,
        _ => 0.0,
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(40_000);
    let mut doc = String::from("[");
    for i in 0..n {
        if i > 0 { doc.push(','); }
        doc.push_str(&format!(
            "{{\"id\": {i}, \"name\": \"item-{i}\", \"price\": {}.{:02}, \"tags\": [\"a\", \"b{}\"], \"ok\": {}, \"none\": null}}",
            i % 997, i % 100, i % 7, i % 3 == 0
        ));
    }
    doc.push(']');
    let mut total = 0.0;
    let mut len = 0;
    for _ in 0..3 {
        let j = P { s: doc.as_bytes(), i: 0 }.value();
        total += sum(&j);
        let mut out = String::new();
        write(&j, &mut out);
        len += out.len();
    }
    println!("{} {:.2} {}", doc.len(), total, len);
}
