// Memories: exported memory read and written from C, grown from C and from
// wasm, refused growth past the maximum, out-of-bounds traps, a host memory.
#include "common.h"

int main(void) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* module = compile_wat(store,
    "(module\n"
    "  (memory (export \"memory\") 2 3)\n"
    "  (data (i32.const 0x1000) \"\\01\\02\\03\\04\")\n"
    "  (func (export \"load\") (param i32) (result i32) (i32.load8_s (local.get 0)))\n"
    "  (func (export \"store\") (param i32) (result i32) (i32.store8 (local.get 0) (i32.const 42)) (i32.const 0))\n"
    "  (func (export \"size\") (param i32) (result i32) (memory.size))\n"
    "  (func (export \"grow\") (param i32) (result i32) (memory.grow (local.get 0))))\n");
  wasm_instance_t* instance = wasm_instance_new(store, module, NULL, NULL);
  CHECK(instance);
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  wasm_memory_t* memory = wasm_extern_as_memory(exports.data[0]);
  CHECK(memory);
  wasm_func_t* load = export_func(&exports, 1);
  wasm_func_t* store_fn = export_func(&exports, 2);
  wasm_func_t* size = export_func(&exports, 3);
  wasm_func_t* grow = export_func(&exports, 4);

  wasm_memorytype_t* mt = wasm_memory_type(memory);
  const wasm_limits_t* limits = wasm_memorytype_limits(mt);
  printf("limits: min %u, max %u\n", limits->min, limits->max);
  wasm_memorytype_delete(mt);

  printf("pages %u, bytes %zu\n", wasm_memory_size(memory), wasm_memory_data_size(memory));
  byte_t* data = wasm_memory_data(memory);
  printf("data[0x1000..0x1004] = %d %d %d %d\n", data[0x1000], data[0x1001], data[0x1002], data[0x1003]);
  data[0x2000] = 99;
  int32_t r;
  CHECK(call_i32(load, 0x2000, &r) == NULL);
  printf("load(0x2000) = %d\n", r);
  CHECK(call_i32(store_fn, 0x2001, &r) == NULL);
  printf("data[0x2001] = %d\n", wasm_memory_data(memory)[0x2001]);

  CHECK(wasm_memory_grow(memory, 1));
  printf("after grow(1): pages %u, bytes %zu\n", wasm_memory_size(memory), wasm_memory_data_size(memory));
  CHECK(!wasm_memory_grow(memory, 1));
  printf("grow past max refused: pages %u\n", wasm_memory_size(memory));
  CHECK(call_i32(grow, 1, &r) == NULL);
  printf("memory.grow(1) from wasm = %d\n", r);
  CHECK(call_i32(size, 0, &r) == NULL);
  printf("memory.size = %d\n", r);

  // The last byte is in bounds, the next one traps.
  CHECK(call_i32(load, 3 * 65536 - 1, &r) == NULL);
  wasm_trap_t* trap = call_i32(load, 3 * 65536, &r);
  CHECK(trap);
  printf("code %d: ", carnac_trap_code(trap));
  print_trap(trap);

  // A memory made by the host, imported by nothing: still usable.
  wasm_limits_t host_limits = {1, 2};
  wasm_memorytype_t* host_type = wasm_memorytype_new(&host_limits);
  wasm_memory_t* host_memory = wasm_memory_new(store, host_type);
  wasm_memorytype_delete(host_type);
  CHECK(host_memory);
  wasm_memory_data(host_memory)[65535] = 7;
  CHECK(wasm_memory_grow(host_memory, 1));
  printf("host memory: pages %u, last byte of page 0 = %d, page 1 zeroed = %d\n", wasm_memory_size(host_memory),
         wasm_memory_data(host_memory)[65535], wasm_memory_data(host_memory)[65536]);
  wasm_limits_t bad_limits = {2, 1};
  wasm_memorytype_t* bad_type = wasm_memorytype_new(&bad_limits);
  CHECK(wasm_memory_new(store, bad_type) == NULL);
  wasm_memorytype_delete(bad_type);

  // A store limited to 2 pages of memory: growing past them fails, and a
  // module needing more does not instantiate.
  wasm_store_t* limited = wasm_store_new(engine);
  carnac_store_limiter(limited, 2 * 65536, -1, -1, -1, -1);
  wasm_instance_t* small = wasm_instance_new(limited, module, NULL, NULL);
  CHECK(small);
  wasm_extern_t* small_grow = carnac_instance_get_export(small, "grow");
  CHECK(call_i32(wasm_extern_as_func(small_grow), 1, &r) == NULL);
  printf("limited store: memory.grow(1) = %d\n", r);
  wasm_extern_delete(small_grow);
  wasm_instance_delete(small);
  wasm_module_t* big = compile_wat(limited, "(module (memory 3))");
  wasm_trap_t* refused = NULL;
  CHECK(wasm_instance_new(limited, big, NULL, &refused) == NULL);
  print_trap(refused);
  wasm_module_delete(big);
  wasm_store_delete(limited);

  wasm_memory_delete(host_memory);
  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_module_delete(module);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  return 0;
}
