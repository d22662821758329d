// Samples held in a caller's arrays (numpy, Arrow, a C program's buffers):
// read in place and encoded a batch at a time with a model's data spec, so
// they train and score exactly as the same values written to a file would
// (the ids hashed as their text, numeric values transformed as the spec
// says). Nothing is copied whole; the caller keeps the arrays alive and
// unchanged while a call that reads them runs.
//
// How the columns meet a data spec (docs/python.md, "Data"):
//   dense    the spec's numeric fields, in order (NaN: missing), each value
//            read as a file holding its shortest text ("0.1" for 0.1f, as
//            numpy and pandas write float32) reads it;
//   ids      its single-valued categorical fields, in order: CSV categorical
//            columns and libffm fields (as "id:1"), hashed as the id's
//            decimal text; Criteo's 26 fields, as 8-digit lowercase hex;
//   CSR      its one multi-valued field: libsvm's features (index = id,
//            value = weight) or a CSV multi-valued column (weights 1).
// A new model trained from arrays alone gets the spec of a CSV file with
// columns label, dense_names..., id_names... (or libsvm's, for a CSR matrix
// alone): that file, holding the same values, trains the same model bit for
// bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace embark {

struct ArrayData {
  size_t rows = 0;
  const float* labels = nullptr;  // [rows], 0 or 1; null to score unlabelled rows
  const float* dense = nullptr;   // [rows x dense_cols], row-major
  int dense_cols = 0;
  // Categorical ids, one per row and column: [rows x id_cols], row-major,
  // int64_t (ids_unsigned false) or uint64_t.
  const void* ids = nullptr;
  int id_cols = 0;
  bool ids_unsigned = false;
  // Weighted ids in CSR form (scipy.sparse.csr_matrix): row r holds
  // indices[indptr[r] .. indptr[r+1]) with weights values[...] (null: 1).
  const int64_t* indptr = nullptr;
  const void* indices = nullptr;  // int64_t or uint64_t
  bool indices_unsigned = false;
  const float* values = nullptr;
  size_t nnz = 0;  // entries of indices (and values); indptr[rows] <= nnz
  // Column names of a new model's data spec; empty: d0, d1, ... and c0, c1, ...
  std::vector<std::string> dense_names, id_names;

  bool has_csr() const { return indptr != nullptr; }
};

}  // namespace embark
