// Reflection and module handling: import and export types, type objects
// built and copied by the host, serialisation and deserialisation, linking
// two modules by name through the carnac.h linker.
#include "common.h"

static const char* KINDS[] = {"func", "global", "table", "memory"};

static void print_name(const wasm_name_t* name) { printf("%.*s", (int)name->size, name->data); }

static void print_valtypes(const wasm_valtype_vec_t* v) {
  printf("(");
  for (size_t i = 0; i < v->size; i++) printf(i ? " %d" : "%d", wasm_valtype_kind(v->data[i]));
  printf(")");
}

static void print_externtype(const wasm_externtype_t* t) {
  printf("%s", KINDS[wasm_externtype_kind(t)]);
  const wasm_functype_t* f = wasm_externtype_as_functype_const(t);
  if (f) {
    print_valtypes(wasm_functype_params(f));
    printf("->");
    print_valtypes(wasm_functype_results(f));
  }
  const wasm_memorytype_t* m = wasm_externtype_as_memorytype_const(t);
  if (m) printf(" %u..%u", wasm_memorytype_limits(m)->min, wasm_memorytype_limits(m)->max);
  const wasm_globaltype_t* g = wasm_externtype_as_globaltype_const(t);
  if (g) printf(" %d mut %d", wasm_valtype_kind(wasm_globaltype_content(g)), wasm_globaltype_mutability(g));
  const wasm_tabletype_t* tt = wasm_externtype_as_tabletype_const(t);
  if (tt) printf(" %d %u..%u", wasm_valtype_kind(wasm_tabletype_element(tt)), wasm_tabletype_limits(tt)->min,
                 wasm_tabletype_limits(tt)->max);
}

static const char* LIB =
  "(module\n"
  "  (import \"env\" \"log\" (func $log (param i32 i64)))\n"
  "  (import \"env\" \"g\" (global (mut f32)))\n"
  "  (import \"env\" \"t\" (table 2 funcref))\n"
  "  (func (export \"square\") (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))\n"
  "  (func (export \"swap\") (param f64 i32) (result i32 f64) (local.get 1) (local.get 0))\n"
  "  (memory (export \"memory\") 1 5)\n"
  "  (global (export \"version\") i64 (i64.const 3))\n"
  "  (table (export \"table\") 4 externref))\n";

int main(void) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* lib = compile_wat(store, LIB);

  wasm_importtype_vec_t imports;
  wasm_module_imports(lib, &imports);
  for (size_t i = 0; i < imports.size; i++) {
    printf("import ");
    print_name(wasm_importtype_module(imports.data[i]));
    printf(".");
    print_name(wasm_importtype_name(imports.data[i]));
    printf(": ");
    print_externtype(wasm_importtype_type(imports.data[i]));
    printf("\n");
  }
  wasm_importtype_vec_t imports_copy;
  wasm_importtype_vec_copy(&imports_copy, &imports);
  CHECK(imports_copy.size == imports.size);
  wasm_importtype_vec_delete(&imports_copy);
  wasm_importtype_vec_delete(&imports);

  wasm_exporttype_vec_t exports;
  wasm_module_exports(lib, &exports);
  for (size_t i = 0; i < exports.size; i++) {
    printf("export ");
    print_name(wasm_exporttype_name(exports.data[i]));
    printf(": ");
    print_externtype(wasm_exporttype_type(exports.data[i]));
    printf("\n");
  }
  wasm_exporttype_vec_delete(&exports);

  // Types built by the host.
  wasm_name_t module_name, name;
  wasm_name_new_from_string(&module_name, "m");
  wasm_name_new_from_string(&name, "n");
  wasm_limits_t limits = {1, wasm_limits_max_default};
  wasm_importtype_t* it = wasm_importtype_new(&module_name, &name, wasm_memorytype_as_externtype(wasm_memorytype_new(&limits)));
  wasm_importtype_t* it2 = wasm_importtype_copy(it);
  printf("host import ");
  print_name(wasm_importtype_module(it2));
  printf(".");
  print_name(wasm_importtype_name(it2));
  printf(": ");
  print_externtype(wasm_importtype_type(it2));
  printf("\n");
  wasm_importtype_delete(it);
  wasm_importtype_delete(it2);
  wasm_name_t ename;
  wasm_name_new_from_string(&ename, "e");
  wasm_exporttype_t* et = wasm_exporttype_new(&ename, wasm_functype_as_externtype(wasm_functype_new_2_1(
      wasm_valtype_new_f32(), wasm_valtype_new_externref(), wasm_valtype_new_funcref())));
  printf("host export ");
  print_name(wasm_exporttype_name(et));
  printf(": ");
  print_externtype(wasm_exporttype_type(et));
  printf("\n");
  wasm_externtype_t* ext_copy = wasm_externtype_copy(wasm_exporttype_type(et));
  CHECK(wasm_externtype_as_functype(ext_copy) != NULL && wasm_externtype_as_tabletype(ext_copy) == NULL);
  wasm_externtype_delete(ext_copy);
  wasm_exporttype_delete(et);
  wasm_valtype_vec_t vts, vts_copy;
  wasm_valtype_vec_new_uninitialized(&vts, 2);
  vts.data[0] = wasm_valtype_new_i64();
  vts.data[1] = wasm_valtype_new(WASM_F64);
  wasm_valtype_vec_copy(&vts_copy, &vts);
  printf("copied valtypes ");
  print_valtypes(&vts_copy);
  printf("\n");
  wasm_valtype_vec_delete(&vts);
  wasm_valtype_vec_delete(&vts_copy);

  // Serialisation: the artifact loads as the same module.
  wasm_module_t* app = compile_wat(store,
    "(module (func (export \"answer\") (result i32) (i32.const 42)))");
  wasm_byte_vec_t artifact;
  wasm_module_serialize(app, &artifact);
  CHECK(artifact.size > 0);
  wasm_module_t* loaded = wasm_module_deserialize(store, &artifact);
  CHECK(loaded);
  wasm_instance_t* inst = wasm_instance_new(store, loaded, NULL, NULL);
  CHECK(inst);
  wasm_extern_vec_t inst_exports;
  wasm_instance_exports(inst, &inst_exports);
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t res = WASM_ARRAY_VEC(r);
  wasm_val_vec_t none = WASM_EMPTY_VEC;
  CHECK(wasm_func_call(export_func(&inst_exports, 0), &none, &res) == NULL);
  printf("deserialized answer() = %d\n", r[0].of.i32);
  artifact.data[artifact.size / 2] ^= 0x55;
  CHECK(wasm_module_deserialize(store, &artifact) == NULL);
  wasm_module_t* refused = NULL;
  carnac_error_t* err = carnac_module_deserialize(engine, &artifact, &refused);
  CHECK(err && !refused);
  carnac_error_delete(err);
  wasm_byte_vec_delete(&artifact);
  // An interpreter-only engine has no machine code to serialise, and says so.
  wasm_config_t* config = wasm_config_new();
  CHECK(carnac_config_strategy(config, CARNAC_STRATEGY_INTERPRETER));
  wasm_engine_t* interp = wasm_engine_new_with_config(config);
  wasm_module_t* interp_module = NULL;
  const char* text = "(module)";
  CHECK(carnac_module_new(interp, (const uint8_t*)text, strlen(text), &interp_module) == NULL);
  wasm_module_serialize(interp_module, &artifact);
  CHECK(artifact.size == 0 && artifact.data == NULL);
  err = carnac_module_serialize(interp_module, &artifact);
  CHECK(err);
  print_error(err);
  wasm_module_delete(interp_module);
  wasm_engine_delete(interp);

  // Linking by name: the app's exports satisfy a client's imports.
  carnac_linker_t* linker = carnac_linker_new(engine);
  CHECK(carnac_linker_define_instance(linker, "app", inst) == NULL);
  wasm_module_t* client = compile_wat(store,
    "(module (import \"app\" \"answer\" (func $a (result i32)))\n"
    "  (import \"host\" \"limit\" (global i32))\n"
    "  (func (export \"twice\") (result i32) (i32.add (call $a) (global.get 0))))");
  wasm_globaltype_t* gt = wasm_globaltype_new(wasm_valtype_new_i32(), WASM_CONST);
  wasm_val_t one = WASM_I32_VAL(1);
  wasm_global_t* limit = wasm_global_new(store, gt, &one);
  wasm_globaltype_delete(gt);
  CHECK(carnac_linker_define(linker, "host", "limit", wasm_global_as_extern(limit)) == NULL);
  err = carnac_linker_define(linker, "host", "limit", wasm_global_as_extern(limit));
  CHECK(err);
  print_error(err);
  wasm_extern_t* found = carnac_linker_get(linker, store, "app", "answer");
  CHECK(found && wasm_extern_kind(found) == WASM_EXTERN_FUNC);
  wasm_extern_delete(found);
  wasm_instance_t* client_inst = NULL;
  wasm_trap_t* trap = NULL;
  CHECK(carnac_linker_instantiate(linker, store, client, &client_inst, &trap) == NULL && client_inst);
  wasm_extern_t* twice = carnac_instance_get_export(client_inst, "twice");
  CHECK(wasm_func_call(wasm_extern_as_func(twice), &none, &res) == NULL);
  printf("linked twice() = %d\n", r[0].of.i32);
  wasm_extern_delete(twice);
  // A start function that traps: the trap comes back, not an error.
  wasm_module_t* starter = compile_wat(store, "(module (func $s unreachable) (start $s))");
  wasm_instance_t* never = NULL;
  CHECK(carnac_linker_instantiate(linker, store, starter, &never, &trap) == NULL && !never && trap);
  print_trap(trap);
  CHECK(wasm_instance_new(store, starter, NULL, &trap) == NULL && trap);
  print_trap(trap);

  wasm_module_delete(starter);
  wasm_instance_delete(client_inst);
  wasm_global_delete(limit);
  wasm_module_delete(client);
  carnac_linker_delete(linker);
  wasm_extern_vec_delete(&inst_exports);
  wasm_instance_delete(inst);
  wasm_module_delete(loaded);
  wasm_module_delete(app);
  wasm_module_delete(lib);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  return 0;
}
