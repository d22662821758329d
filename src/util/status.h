// Status and Result<T> are public (include/embark/status.h); the macros that
// propagate them are the library's own.
#pragma once

#include "embark/status.h"

#define EMBARK_CONCAT_INNER(a, b) a##b
#define EMBARK_CONCAT(a, b) EMBARK_CONCAT_INNER(a, b)

#define EMBARK_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::embark::Status _st = (expr);            \
    if (!_st.ok()) return _st;                \
  } while (0)

#define EMBARK_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#define EMBARK_ASSIGN_OR_RETURN(lhs, expr) \
  EMBARK_ASSIGN_OR_RETURN_IMPL(EMBARK_CONCAT(_res_, __LINE__), lhs, expr)
