/* Transactions (AME): version clock, running transaction, I/O guard (stm.c). */
#ifndef PX_PY_STM_H
#define PX_PY_STM_H

#include "binding.h"

/* Create TransactionError/IOInTransactionError in st and add the _stm_*
 * functions to m. Called once from module exec; -1 with an exception set. */
int px_py_stm_init(PyObject *m, px_module_state_t *st);

/* 0 when no transaction runs on this thread; otherwise raise
 * IOInTransactionError naming `what` and return -1. Any thread; C code that
 * performs I/O on behalf of Python calls it first. */
int px_py_stm_refuse(px_module_state_t *st, const char *what);

/* True while a transaction runs on this thread. */
bool px_py_stm_active(void);

#endif
