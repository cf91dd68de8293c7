// carnac.h: Carnac's extensions to the standard WebAssembly C API (wasm.h).
//
// What the standard lacks: engine configuration (tier, fuel, interruption,
// stack limits, wasm features), store limits, fuel and epoch deadlines,
// interrupt handles, modules from text with a reason for refusal,
// serialisation with a reason, WASI contexts, a linker instantiating modules
// by import name, exports by name, and trap codes and WASI exit statuses.
//
// Functions returning `own carnac_error_t*` return NULL on success, else an
// error whose message carnac_error_message gives; delete it with
// carnac_error_delete.

#ifndef CARNAC_H
#define CARNAC_H

#include "wasm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define own

// The value kind of v128 (SIMD) value types, which the standard lacks.
#define CARNAC_V128 4

// Errors.

typedef struct carnac_error_t carnac_error_t;
WASM_API_EXTERN void carnac_error_delete(own carnac_error_t*);
// The message, not zero-terminated.
WASM_API_EXTERN void carnac_error_message(const carnac_error_t*, own wasm_name_t* out);

// Configuration (applied by wasm_engine_new_with_config).

enum carnac_strategy_enum {
  CARNAC_STRATEGY_AUTO,         // interpret at once, compile hot code (default)
  CARNAC_STRATEGY_INTERPRETER,  // interpret only
  CARNAC_STRATEGY_CRANELIFT,    // compile whole modules ahead of running
};
// False (nothing changed) for an unknown strategy or one this build lacks.
WASM_API_EXTERN bool carnac_config_strategy(wasm_config_t*, uint8_t strategy);
// Meter execution with fuel: a store without fuel traps (CARNAC_TRAP_OUT_OF_FUEL).
WASM_API_EXTERN void carnac_config_consume_fuel(wasm_config_t*, bool);
// Deadlines in ticks of carnac_engine_increment_epoch.
WASM_API_EXTERN void carnac_config_epoch_interruption(wasm_config_t*, bool);
// Interrupt handles (carnac_interrupt_handle_new).
WASM_API_EXTERN void carnac_config_interruptible(wasm_config_t*, bool);
WASM_API_EXTERN void carnac_config_wasm_backtrace(wasm_config_t*, bool);
WASM_API_EXTERN void carnac_config_max_wasm_stack(wasm_config_t*, size_t bytes);
WASM_API_EXTERN void carnac_config_max_call_depth(wasm_config_t*, size_t depth);
// WebAssembly features (all on by default: WebAssembly 2.0).
WASM_API_EXTERN void carnac_config_wasm_simd(wasm_config_t*, bool);
WASM_API_EXTERN void carnac_config_wasm_bulk_memory(wasm_config_t*, bool);
WASM_API_EXTERN void carnac_config_wasm_reference_types(wasm_config_t*, bool);
WASM_API_EXTERN void carnac_config_wasm_multi_value(wasm_config_t*, bool);

// Engines and stores.

// One tick of the engine's epoch (any thread).
WASM_API_EXTERN void carnac_engine_increment_epoch(const wasm_engine_t*);
WASM_API_EXTERN own carnac_error_t* carnac_store_set_fuel(wasm_store_t*, uint64_t fuel);
WASM_API_EXTERN own carnac_error_t* carnac_store_get_fuel(const wasm_store_t*, uint64_t* out);
WASM_API_EXTERN void carnac_store_set_epoch_deadline(wasm_store_t*, uint64_t ticks_beyond_current);
// Limits on the store's guests; a negative value means no limit.
WASM_API_EXTERN void carnac_store_limiter(
  wasm_store_t*, int64_t memory_size, int64_t table_elements,
  int64_t instances, int64_t tables, int64_t memories);

// Interrupts.

typedef struct carnac_interrupt_handle_t carnac_interrupt_handle_t;
// NULL unless the engine has interruption or epochs configured.
WASM_API_EXTERN own carnac_interrupt_handle_t* carnac_interrupt_handle_new(const wasm_store_t*);
// Stops the store's guests with an "interrupted" trap (any thread).
WASM_API_EXTERN void carnac_interrupt_handle_interrupt(const carnac_interrupt_handle_t*);
WASM_API_EXTERN void carnac_interrupt_handle_delete(own carnac_interrupt_handle_t*);
WASM_API_EXTERN void carnac_store_clear_interrupt(wasm_store_t*);

// Modules.

// A module from binary or text bytes, or why it was refused.
WASM_API_EXTERN own carnac_error_t* carnac_module_new(
  const wasm_engine_t*, const uint8_t* bytes, size_t len, own wasm_module_t** out);
WASM_API_EXTERN own carnac_error_t* carnac_wat2wasm(
  const char* wat, size_t len, own wasm_byte_vec_t* out);
WASM_API_EXTERN own carnac_error_t* carnac_module_serialize(
  const wasm_module_t*, own wasm_byte_vec_t* out);
// Artifacts are trusted code: load only your own.
WASM_API_EXTERN own carnac_error_t* carnac_module_deserialize(
  const wasm_engine_t*, const wasm_byte_vec_t* bytes, own wasm_module_t** out);

// Instances and traps.

// The export called `name` (a new extern), or NULL.
WASM_API_EXTERN own wasm_extern_t* carnac_instance_get_export(
  const wasm_instance_t*, const char* name);

enum carnac_trap_code_enum {
  CARNAC_TRAP_UNREACHABLE,
  CARNAC_TRAP_MEMORY_OUT_OF_BOUNDS,
  CARNAC_TRAP_TABLE_OUT_OF_BOUNDS,
  CARNAC_TRAP_INDIRECT_CALL_TO_NULL,
  CARNAC_TRAP_BAD_SIGNATURE,
  CARNAC_TRAP_INTEGER_OVERFLOW,
  CARNAC_TRAP_INTEGER_DIVISION_BY_ZERO,
  CARNAC_TRAP_BAD_CONVERSION_TO_INTEGER,
  CARNAC_TRAP_STACK_EXHAUSTED,
  CARNAC_TRAP_OUT_OF_FUEL,
  CARNAC_TRAP_INTERRUPTED,
  CARNAC_TRAP_HOST_ERROR,
  CARNAC_TRAP_OTHER = 255,
};
WASM_API_EXTERN uint8_t carnac_trap_code(const wasm_trap_t*);
// Whether the trap is a WASI proc_exit, and its status.
WASM_API_EXTERN bool carnac_trap_exit_status(const wasm_trap_t*, int* status);

// WASI preview1.

typedef struct carnac_wasi_config_t carnac_wasi_config_t;
// By default the guest has no arguments, environment or directories, and its
// standard streams are null (reads see end of file, writes are discarded).
WASM_API_EXTERN own carnac_wasi_config_t* carnac_wasi_config_new(void);
WASM_API_EXTERN void carnac_wasi_config_delete(own carnac_wasi_config_t*);
WASM_API_EXTERN bool carnac_wasi_config_set_argv(carnac_wasi_config_t*, size_t argc, const char* const argv[]);
WASM_API_EXTERN bool carnac_wasi_config_set_env(
  carnac_wasi_config_t*, size_t n, const char* const names[], const char* const values[]);
WASM_API_EXTERN void carnac_wasi_config_inherit_stdin(carnac_wasi_config_t*);
WASM_API_EXTERN void carnac_wasi_config_set_stdin_bytes(carnac_wasi_config_t*, const wasm_byte_vec_t* bytes);
WASM_API_EXTERN void carnac_wasi_config_inherit_stdout(carnac_wasi_config_t*);
WASM_API_EXTERN void carnac_wasi_config_inherit_stderr(carnac_wasi_config_t*);
WASM_API_EXTERN bool carnac_wasi_config_set_stdout_file(carnac_wasi_config_t*, const char* path);
WASM_API_EXTERN bool carnac_wasi_config_set_stderr_file(carnac_wasi_config_t*, const char* path);
WASM_API_EXTERN bool carnac_wasi_config_preopen_dir(
  carnac_wasi_config_t*, const char* host_path, const char* guest_path);
// Gives the store's guests this WASI context (takes the configuration).
WASM_API_EXTERN own carnac_error_t* carnac_store_set_wasi(wasm_store_t*, own carnac_wasi_config_t*);

// The linker: instantiation by import name.

typedef struct carnac_linker_t carnac_linker_t;
WASM_API_EXTERN own carnac_linker_t* carnac_linker_new(const wasm_engine_t*);
WASM_API_EXTERN void carnac_linker_delete(own carnac_linker_t*);
WASM_API_EXTERN void carnac_linker_allow_shadowing(carnac_linker_t*, bool allow);
WASM_API_EXTERN own carnac_error_t* carnac_linker_define(
  carnac_linker_t*, const char* module, const char* name, const wasm_extern_t* item);
// wasi_snapshot_preview1, acting on the WASI context of the calling store.
WASM_API_EXTERN own carnac_error_t* carnac_linker_define_wasi(carnac_linker_t*);
WASM_API_EXTERN own carnac_error_t* carnac_linker_define_instance(
  carnac_linker_t*, const char* name, const wasm_instance_t*);
// A start function's trap goes to `trap_out` (the result is then NULL);
// other failures are errors.
WASM_API_EXTERN own carnac_error_t* carnac_linker_instantiate(
  const carnac_linker_t*, wasm_store_t*, const wasm_module_t*,
  own wasm_instance_t** instance_out, own wasm_trap_t** trap_out);
WASM_API_EXTERN own wasm_extern_t* carnac_linker_get(
  const carnac_linker_t*, wasm_store_t*, const char* module, const char* name);

#undef own

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CARNAC_H
