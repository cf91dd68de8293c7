//! What the wasm-smith tests (`differential`, `fuzz_smith`) share.

/// Whether a module can park a thread: it has a shared memory and a
/// `memory.atomic.wait32/64` (on a shared memory whose cell holds the expected
/// value, a wait blocks until its timeout, which may be never, and how long it
/// takes is timing, not the module's behaviour). Single-threaded runs skip such
/// modules; every other atomic operator (and a wait on an unshared memory,
/// which traps) runs deterministically.
pub fn may_block(bytes: &[u8]) -> bool {
    use wasmparser::{Operator, Payload, TypeRef};
    let (mut shared, mut waits) = (false, false);
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::ImportSection(imports)) => {
                for import in imports.into_imports().flatten() {
                    shared |= matches!(import.ty, TypeRef::Memory(m) if m.shared);
                }
            }
            Ok(Payload::MemorySection(memories)) => shared |= memories.into_iter().flatten().any(|m| m.shared),
            Ok(Payload::CodeSectionEntry(body)) => {
                let Ok(mut ops) = body.get_operators_reader() else { return true };
                while !ops.eof() {
                    match ops.read() {
                        Ok(Operator::MemoryAtomicWait32 { .. } | Operator::MemoryAtomicWait64 { .. }) => waits = true,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            _ => {}
        }
    }
    shared && waits
}

/// What 3.0 features a module uses, for the tests' summaries: `(exceptions, gc)`, whether it has a
/// tag (defined or imported: exception handling), and whether it has a struct or array type or
/// makes an `i31` (GC).
#[allow(dead_code)] // `fuzz_smith` counts only some of them
pub fn features(bytes: &[u8]) -> (bool, bool) {
    use wasmparser::{CompositeInnerType, Operator, Payload, TypeRef};
    let (mut exceptions, mut gc) = (false, false);
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::ImportSection(imports)) => {
                for import in imports.into_imports().flatten() {
                    exceptions |= matches!(import.ty, TypeRef::Tag(_));
                }
            }
            Ok(Payload::TagSection(tags)) => exceptions |= tags.count() > 0,
            Ok(Payload::TypeSection(types)) => {
                for group in types.into_iter().flatten() {
                    gc |= group.types().any(|t| {
                        matches!(t.composite_type.inner, CompositeInnerType::Struct(_) | CompositeInnerType::Array(_))
                    });
                }
            }
            Ok(Payload::CodeSectionEntry(body)) if !gc => {
                let Ok(mut ops) = body.get_operators_reader() else { continue };
                while !ops.eof() {
                    match ops.read() {
                        Ok(Operator::RefI31) => gc = true,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            _ => {}
        }
    }
    (exceptions, gc)
}
