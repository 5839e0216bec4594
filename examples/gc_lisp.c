/* A tiny Lisp on poolalloc's reference counts and cycle collector: numbers
 * and symbols are atoms (untracked), cons cells, closures and environments
 * are tracked.  A function that defines a helper inside itself makes a
 * cycle on every call (the local environment binds the helper, whose
 * closure holds the environment): counting alone would leak them all, the
 * collector takes them back, and the statistics show the memory returning
 * to the pools.
 *
 * Every function returns a new reference; arguments are borrowed.
 */
#include <ctype.h>
#include <poolalloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { long value; } num;
typedef struct { char name[16]; } sym;
typedef struct { void *car, *cdr; } cons;
typedef struct { void *params, *body, *env; } closure;
typedef struct { void *bindings, *parent; } env; /* bindings: ((sym . value) ...) */
typedef struct { int op; } prim;

/* The tracked types are structs of n object pointers. */
static void visit_fields(void *o, int n, pa_gc_visit visit, void *arg) {
  void **fields = o;
  for (int i = 0; i < n; i++)
    if (fields[i]) visit(fields[i], arg);
}
static void clear_fields(void *o, int n) {
  void **fields = o;
  for (int i = 0; i < n; i++) {
    void *old = fields[i];
    fields[i] = NULL;
    pa_decref(old);
  }
}
static void traverse2(void *o, pa_gc_visit visit, void *arg) { visit_fields(o, 2, visit, arg); }
static void traverse3(void *o, pa_gc_visit visit, void *arg) { visit_fields(o, 3, visit, arg); }
static void clear2(void *o) { clear_fields(o, 2); }
static void clear3(void *o) { clear_fields(o, 3); }

static const pa_gc_type num_type = {"num", sizeof(num), NULL, NULL, NULL};
static const pa_gc_type sym_type = {"sym", sizeof(sym), NULL, NULL, NULL};
static const pa_gc_type prim_type = {"prim", sizeof(prim), NULL, NULL, NULL};
static const pa_gc_type cons_type = {"cons", sizeof(cons), traverse2, clear2, NULL};
static const pa_gc_type env_type = {"env", sizeof(env), traverse2, clear2, NULL};
static const pa_gc_type closure_type = {"closure", sizeof(closure), traverse3, clear3, NULL};

static pa_gc_runtime *rt;
static void *symbols[64]; /* interned, each held once */
static int nsymbols;

static bool is(const void *o, const pa_gc_type *type) { return o && pa_gc_type_of(o) == type; }

static void *new_num(long value) {
  num *n = pa_gc_new(rt, &num_type);
  n->value = value;
  return n;
}

static void *new_cons(void *car, void *cdr) { /* takes both references */
  cons *c = pa_gc_new(rt, &cons_type);
  c->car = car;
  c->cdr = cdr;
  return c;
}

static void *intern(const char *name) {
  for (int i = 0; i < nsymbols; i++)
    if (strcmp(((sym *)symbols[i])->name, name) == 0) {
      pa_incref(symbols[i]);
      return symbols[i];
    }
  sym *s = pa_gc_new(rt, &sym_type);
  snprintf(s->name, sizeof s->name, "%s", name);
  symbols[nsymbols++] = s;
  pa_incref(s);
  return s;
}

/* ---- Reader ---------------------------------------------------------------- */

static const char *cursor;

static void *read_form(void);

static void *read_list(void) {
  while (isspace((unsigned char)*cursor)) cursor++;
  if (*cursor == ')') {
    cursor++;
    return NULL;
  }
  void *car = read_form();
  return new_cons(car, read_list());
}

static void *read_form(void) {
  while (isspace((unsigned char)*cursor)) cursor++;
  if (*cursor == '(') {
    cursor++;
    return read_list();
  }
  char token[16];
  int n = 0;
  while (*cursor && !isspace((unsigned char)*cursor) && *cursor != '(' && *cursor != ')')
    if (n < 15) token[n++] = *cursor++; else cursor++;
  token[n] = '\0';
  if (isdigit((unsigned char)token[0])) return new_num(strtol(token, NULL, 10));
  return intern(token);
}

/* ---- Evaluator ------------------------------------------------------------- */

enum { ADD, SUB, MUL, LESS, EQUAL, CONS, CAR, CDR, NULLP };
static const char *const prim_names[] = {"+", "-", "*", "<", "=", "cons", "car", "cdr", "null?"};

static void *car(void *o) { return is(o, &cons_type) ? ((cons *)o)->car : NULL; }
static void *cdr(void *o) { return is(o, &cons_type) ? ((cons *)o)->cdr : NULL; }
static long value(void *o) { return is(o, &num_type) ? ((num *)o)->value : 0; }

static void define(env *e, void *name, void *val) { /* borrows both */
  pa_incref(name);
  pa_incref(val);
  e->bindings = new_cons(new_cons(name, val), e->bindings);
}

static void *lookup(env *e, void *name) {
  for (; e; e = e->parent)
    for (void *b = e->bindings; b; b = cdr(b))
      if (car(car(b)) == name) {
        pa_incref(cdr(car(b)));
        return cdr(car(b));
      }
  fprintf(stderr, "unbound symbol %s\n", ((sym *)name)->name);
  exit(1);
}

static void *eval(void *x, env *e);

static void *apply_prim(int op, void *a, void *b) {
  switch (op) {
  case ADD: return new_num(value(a) + value(b));
  case SUB: return new_num(value(a) - value(b));
  case MUL: return new_num(value(a) * value(b));
  case LESS: return new_num(value(a) < value(b));
  case EQUAL: return new_num(value(a) == value(b));
  case CONS: pa_incref(a); pa_incref(b); return new_cons(a, b);
  case CAR: pa_incref(car(a)); return car(a);
  case CDR: pa_incref(cdr(a)); return cdr(a);
  default: return new_num(a == NULL);
  }
}

static void *eval_body(void *body, env *e) {
  void *result = NULL;
  for (; body; body = cdr(body)) {
    pa_decref(result);
    result = eval(car(body), e);
  }
  return result;
}

static void *apply(void *f, void *args, env *e) {
  if (is(f, &prim_type)) {
    void *a = eval(car(args), e), *b = cdr(args) ? eval(car(cdr(args)), e) : NULL;
    void *result = apply_prim(((prim *)f)->op, a, b);
    pa_decref(a);
    pa_decref(b);
    return result;
  }
  closure *c = f;
  env *local = pa_gc_new(rt, &env_type);
  pa_incref(c->env);
  local->parent = c->env;
  for (void *p = c->params; p; p = cdr(p), args = cdr(args)) {
    void *arg = eval(car(args), e);
    define(local, car(p), arg);
    pa_decref(arg);
  }
  void *result = eval_body(c->body, local);
  pa_decref(local);
  return result;
}

static void *make_closure(void *params, void *body, env *e) {
  closure *c = pa_gc_new(rt, &closure_type);
  pa_incref(params);
  pa_incref(body);
  pa_incref(e);
  *c = (closure){params, body, e};
  return c;
}

static void *eval(void *x, env *e) {
  if (x == NULL || is(x, &num_type)) {
    pa_incref(x);
    return x;
  }
  if (is(x, &sym_type)) return lookup(e, x);
  void *head = car(x);
  const char *name = is(head, &sym_type) ? ((sym *)head)->name : "";
  if (strcmp(name, "quote") == 0) {
    pa_incref(car(cdr(x)));
    return car(cdr(x));
  }
  if (strcmp(name, "if") == 0) {
    void *test = eval(car(cdr(x)), e);
    void *branch = value(test) ? car(cdr(cdr(x))) : car(cdr(cdr(cdr(x))));
    pa_decref(test);
    return eval(branch, e);
  }
  if (strcmp(name, "lambda") == 0) return make_closure(car(cdr(x)), cdr(cdr(x)), e);
  if (strcmp(name, "define") == 0) {
    void *target = car(cdr(x));
    void *val = is(target, &cons_type) ? make_closure(cdr(target), cdr(cdr(x)), e)
                                       : eval(car(cdr(cdr(x))), e);
    define(e, is(target, &cons_type) ? car(target) : target, val);
    return val;
  }
  void *f = eval(head, e);
  void *result = apply(f, cdr(x), e);
  pa_decref(f);
  return result;
}

static const char program[] =
    "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))"
    "(define (make-list n) (if (= n 0) (quote ()) (cons n (make-list (- n 1)))))"
    "(define (sum l) (if (null? l) 0 (+ (car l) (sum (cdr l)))))"
    "(define (work i) (define (helper x) (+ x i)) (helper (sum (make-list 50))))"
    "(define (repeat n acc) (if (= n 0) acc (repeat (- n 1) (+ acc (work n)))))";

static void report(const char *when) {
  struct pa_gc_stats s;
  struct pa_stats pools;
  pa_gc_stats_get(rt, &s);
  pa_stats_get(&pools);
  size_t blocks = 0;
  for (size_t i = 0; i < pools.size_classes; i++) blocks += pools.classes[i].blocks_in_use;
  printf("%-28s objects %7zu (tracked %6zu)  pool blocks in use %7zu  arenas %3zu\n", when,
         s.objects, s.tracked, blocks, pools.arenas_current);
}

int main(void) {
  rt = pa_gc_runtime_create(NULL);
  env *global = pa_gc_new(rt, &env_type);
  for (int op = 0; op <= NULLP; op++) {
    prim *p = pa_gc_new(rt, &prim_type);
    p->op = op;
    void *name = intern(prim_names[op]);
    define(global, name, p);
    pa_decref(name);
    pa_decref(p);
  }
  cursor = program;
  for (;;) {
    while (isspace((unsigned char)*cursor)) cursor++;
    if (*cursor == '\0') break;
    void *form = read_form();
    pa_decref(eval(form, global));
    pa_decref(form);
  }
  report("after the definitions");
  /* Every function defined refers to the environment it was defined in,
   * which refers to the function: cycles, which pa_gc_referrers shows. */
  void *referrers[16];
  printf("%zu objects refer to the global environment\n",
         pa_gc_referrers(rt, global, referrers, 16));
  /* The definitions stay for the whole run: frozen, no collection walks
   * them again (unfrozen at the end, so their cycles can go). */
  printf("frozen: %zu objects\n", pa_gc_freeze(rt));

  const char *runs[] = {"(repeat 3000 0)", "(fib 18)"};
  for (int i = 0; i < 2; i++) {
    cursor = runs[i];
    void *form = read_form();
    pa_gc_disable(rt);
    void *result = eval(form, global);
    printf("%s = %ld\n", runs[i], value(result));
    pa_decref(result);
    pa_decref(form);
    char when[64];
    snprintf(when, sizeof when, "after %s, no collector", runs[i]);
    report(when);
    size_t freed = pa_gc_collect(rt, 2);
    printf("pa_gc_collect freed %zu objects in cycles\n", freed);
    report("after pa_gc_collect");
    pa_gc_enable(rt);
  }
  cursor = runs[0];
  void *form = read_form();
  void *result = eval(form, global);
  pa_decref(result);
  pa_decref(form);
  report("again, collector enabled");
  struct pa_gc_stats s;
  pa_gc_stats_get(rt, &s);
  for (int g = 0; g < PA_GC_GENERATIONS; g++)
    printf("generation %d: %zu collections, %zu examined, %zu collected, %.2f ms\n", g,
           s.generations[g].collections, s.generations[g].examined, s.generations[g].collected,
           s.generations[g].nanoseconds / 1e6);
  pa_decref(global);
  for (int i = 0; i < nsymbols; i++) pa_decref(symbols[i]);
  printf("unfrozen: %zu objects\n", pa_gc_unfreeze(rt));
  pa_gc_collect(rt, 2);
  report("at the end");
  pa_gc_runtime_destroy(rt);
  return 0;
}
