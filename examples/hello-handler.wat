;; A CGI handler for `carnac serve` in plain WAT: prints a header block and a body.
;;   carnac serve examples/hello-handler.wat   then   curl http://127.0.0.1:8080/
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\n\nHello from a fresh Carnac instance!\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))   ;; iov.buf
    (i32.store (i32.const 4) (i32.const 62))   ;; iov.len
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
