// WASI through carnac.h: a linker with wasi_snapshot_preview1, arguments,
// environment, stdin bytes, stdout inherited and redirected to a file, the
// exit status of proc_exit, a preopened directory the guest reads a file
// from, and one that does not exist.
#include <sys/stat.h>
#include "common.h"

static const char* GUEST =
  "(module\n"
  "  (import \"wasi_snapshot_preview1\" \"fd_write\" (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
  "  (import \"wasi_snapshot_preview1\" \"fd_read\" (func $fd_read (param i32 i32 i32 i32) (result i32)))\n"
  "  (import \"wasi_snapshot_preview1\" \"args_sizes_get\" (func $args_sizes_get (param i32 i32) (result i32)))\n"
  "  (import \"wasi_snapshot_preview1\" \"args_get\" (func $args_get (param i32 i32) (result i32)))\n"
  "  (import \"wasi_snapshot_preview1\" \"environ_sizes_get\" (func $environ_sizes_get (param i32 i32) (result i32)))\n"
  "  (import \"wasi_snapshot_preview1\" \"environ_get\" (func $environ_get (param i32 i32) (result i32)))\n"
  "  (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $proc_exit (param i32)))\n"
  "  (import \"wasi_snapshot_preview1\" \"path_open\"\n"
  "    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))\n"
  "  (memory (export \"memory\") 1)\n"
  "  (data (i32.const 16) \"hello from wasi\\n\")\n"
  "  (data (i32.const 48) \"greeting.txt\")\n"
  "  (func $write (param $ptr i32) (param $len i32)\n"
  "    (i32.store (i32.const 0) (local.get $ptr))\n"
  "    (i32.store (i32.const 4) (local.get $len))\n"
  "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))\n"
  "  ;; Writes `len` bytes at `ptr` with each zero byte turned into a newline.\n"
  "  (func $write_lines (param $ptr i32) (param $len i32) (local $i i32)\n"
  "    (block $done (loop $next\n"
  "      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))\n"
  "      (if (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))\n"
  "        (then (i32.store8 (i32.add (local.get $ptr) (local.get $i)) (i32.const 10))))\n"
  "      (local.set $i (i32.add (local.get $i) (i32.const 1)))\n"
  "      (br $next)))\n"
  "    (call $write (local.get $ptr) (local.get $len)))\n"
  ";; Prints the file greeting.txt of the first preopened directory (fd 3);\n"
  ";; returns path_open's errno.\n"
  "  (func (export \"cat\") (result i32) (local $errno i32)\n"
  "    (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 48) (i32.const 12)\n"
  "      (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 12)))\n"
  "    (if (local.get $errno) (then (return (local.get $errno))))\n"
  "    (i32.store (i32.const 0) (i32.const 3000))\n"
  "    (i32.store (i32.const 4) (i32.const 200))\n"
  "    (drop (call $fd_read (i32.load (i32.const 12)) (i32.const 0) (i32.const 1) (i32.const 8)))\n"
  "    (call $write (i32.const 3000) (i32.load (i32.const 8)))\n"
  "    (i32.const 0))\n"
  "  (func (export \"_start\")\n"
  "    (call $write (i32.const 16) (i32.const 16))\n"
  "    (drop (call $args_sizes_get (i32.const 100) (i32.const 104)))\n"
  "    (drop (call $args_get (i32.const 200) (i32.const 1000)))\n"
  "    (call $write_lines (i32.const 1000) (i32.load (i32.const 104)))\n"
  "    (drop (call $environ_sizes_get (i32.const 100) (i32.const 104)))\n"
  "    (drop (call $environ_get (i32.const 200) (i32.const 2000)))\n"
  "    (call $write_lines (i32.const 2000) (i32.load (i32.const 104)))\n"
  "    (i32.store (i32.const 0) (i32.const 3000))\n"
  "    (i32.store (i32.const 4) (i32.const 100))\n"
  "    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))\n"
  "    (call $write (i32.const 3000) (i32.load (i32.const 8)))\n"
  "    (call $proc_exit (i32.const 7))))\n";

static void run_start(wasm_instance_t* instance) {
  wasm_extern_t* start = carnac_instance_get_export(instance, "_start");
  CHECK(start && wasm_extern_kind(start) == WASM_EXTERN_FUNC);
  CHECK(carnac_instance_get_export(instance, "missing") == NULL);
  wasm_val_vec_t none = WASM_EMPTY_VEC;
  fflush(stdout);
  wasm_trap_t* trap = wasm_func_call(wasm_extern_as_func(start), &none, &none);
  fflush(stdout);
  int status = -1;
  CHECK(trap && carnac_trap_exit_status(trap, &status));
  printf("exit status %d (trap code %d)\n", status, carnac_trap_code(trap));
  wasm_trap_delete(trap);
  wasm_extern_delete(start);
}

static wasm_instance_t* instantiate(carnac_linker_t* linker, wasm_store_t* store, wasm_module_t* module) {
  wasm_instance_t* instance = NULL;
  wasm_trap_t* trap = NULL;
  CHECK(carnac_linker_instantiate(linker, store, module, &instance, &trap) == NULL);
  CHECK(instance && !trap);
  return instance;
}

int main(int argc, char** argv) {
  CHECK(argc == 2);  // a scratch directory
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* module = compile_wat(store, GUEST);
  carnac_linker_t* linker = carnac_linker_new(engine);
  CHECK(carnac_linker_define_wasi(linker) == NULL);

  // Without a WASI context configured the guest sees nothing, and its
  // output goes nowhere: only the exit status shows.
  wasm_instance_t* bare = instantiate(linker, store, module);
  run_start(bare);
  wasm_instance_delete(bare);

  carnac_wasi_config_t* wasi = carnac_wasi_config_new();
  const char* args[] = {"guest.wasm", "--flag", "value"};
  CHECK(carnac_wasi_config_set_argv(wasi, 3, args));
  const char* names[] = {"GREETING", "LANG"};
  const char* values[] = {"bonjour", "C"};
  CHECK(carnac_wasi_config_set_env(wasi, 2, names, values));
  wasm_byte_vec_t input;
  wasm_name_new_from_string(&input, "a line from stdin\n");
  carnac_wasi_config_set_stdin_bytes(wasi, &input);
  wasm_byte_vec_delete(&input);
  carnac_wasi_config_inherit_stdout(wasi);
  CHECK(carnac_store_set_wasi(store, wasi) == NULL);
  wasm_instance_t* instance = instantiate(linker, store, module);
  run_start(instance);
  wasm_instance_delete(instance);

  // A second store, its stdout in a file.
  char path[4096];
  snprintf(path, sizeof path, "%s/stdout.txt", argv[1]);
  wasm_store_t* store2 = wasm_store_new(engine);
  wasi = carnac_wasi_config_new();
  const char* args2[] = {"second"};
  CHECK(carnac_wasi_config_set_argv(wasi, 1, args2));
  CHECK(carnac_wasi_config_set_stdout_file(wasi, path));
  CHECK(carnac_store_set_wasi(store2, wasi) == NULL);
  wasm_instance_t* instance2 = instantiate(linker, store2, module);
  run_start(instance2);
  wasm_instance_delete(instance2);
  wasm_store_delete(store2);
  FILE* f = fopen(path, "r");
  CHECK(f);
  char buf[256];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  printf("file: %.*s", (int)n, buf);

  // A preopened directory: the guest reads a file in it.
  char dir[4096], file[4200];
  snprintf(dir, sizeof dir, "%s/data", argv[1]);
  snprintf(file, sizeof file, "%s/greeting.txt", dir);
  mkdir(dir, 0755);
  FILE* g = fopen(file, "w");
  CHECK(g);
  fputs("read through a preopened directory\n", g);
  fclose(g);
  wasm_store_t* store3 = wasm_store_new(engine);
  wasi = carnac_wasi_config_new();
  CHECK(carnac_wasi_config_preopen_dir(wasi, dir, "/data"));
  carnac_wasi_config_inherit_stdout(wasi);
  CHECK(carnac_store_set_wasi(store3, wasi) == NULL);
  wasm_instance_t* instance3 = instantiate(linker, store3, module);
  wasm_extern_t* cat = carnac_instance_get_export(instance3, "cat");
  wasm_val_t errno_val[1] = {WASM_INIT_VAL};
  wasm_val_vec_t no_args = WASM_EMPTY_VEC, errno_vec = WASM_ARRAY_VEC(errno_val);
  fflush(stdout);
  CHECK(wasm_func_call(wasm_extern_as_func(cat), &no_args, &errno_vec) == NULL);
  fflush(stdout);
  printf("cat: errno %d\n", errno_val[0].of.i32);
  // Without the preopen (the first store's context) there is no fd 3: EBADF (8).
  wasm_instance_t* instance4 = instantiate(linker, store, module);
  wasm_extern_t* cat4 = carnac_instance_get_export(instance4, "cat");
  CHECK(wasm_func_call(wasm_extern_as_func(cat4), &no_args, &errno_vec) == NULL);
  printf("cat without a preopen: errno %d\n", errno_val[0].of.i32);
  wasm_extern_delete(cat4);
  wasm_instance_delete(instance4);
  wasm_extern_delete(cat);
  wasm_instance_delete(instance3);
  wasm_store_delete(store3);

  // A preopened directory that does not exist: refused with a reason.
  wasi = carnac_wasi_config_new();
  CHECK(carnac_wasi_config_preopen_dir(wasi, "/no/such/directory", "/data"));
  carnac_error_t* err = carnac_store_set_wasi(store, wasi);
  CHECK(err);
  print_error(err);

  // A module whose imports the linker lacks.
  wasm_module_t* needy = compile_wat(store, "(module (import \"env\" \"missing\" (func)))");
  wasm_instance_t* none = NULL;
  err = carnac_linker_instantiate(linker, store, needy, &none, NULL);
  CHECK(err && !none);
  print_error(err);
  wasm_module_delete(needy);

  carnac_linker_delete(linker);
  wasm_module_delete(module);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  return 0;
}
