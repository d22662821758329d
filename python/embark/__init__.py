"""embark from Python: train, score and save embedding-based recommendation
models with the engine and checkpoints of the `embark` command.

    import embark, numpy as np
    train = embark.Dataset(labels=y, dense=x, ids=ids)   # numpy, read in place
    trainer = embark.train(train, valid=held_out, model="deepfm", epochs=2)
    p = trainer.predict(held_out)     # float32, one click probability per row
    trainer.save("ctr-model")         # `embark serve --model ctr-model` serves it
    model = embark.load("ctr-model")
    model.evaluate(held_out)          # {"auc": ..., "logloss": ..., ...}

Every training parameter of `embark params` is a keyword argument. Training
and scoring release the GIL; Ctrl-C stops a fit cleanly (its checkpoint is
written) and raises KeyboardInterrupt. docs/python.md documents it all.
"""

import difflib
import json
import os
import shutil
import tempfile

import numpy as np

from . import _embark
from ._errors import DataError, Error, InvalidArgument, IOFailure, NotFound

__all__ = ["Dataset", "Trainer", "Model", "train", "load", "params", "plot_history",
           "Error", "InvalidArgument", "NotFound", "IOFailure", "DataError"]
__version__ = _embark.version()


def params():
    """Every training parameter: name, flag, type, group, default, help."""
    return _embark.params()


_names = None


def _param_names():
    global _names
    if _names is None:
        _names = set()
        for p in _embark.params():
            _names.add(p["name"])
            _names.update(p["former_names"])
    return _names


def _param_text(name, value):
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_param_text(name, v) for v in value)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return str(value)
    raise TypeError(f"parameter {name}: a {type(value).__name__} is not a number, string, bool or list")


def _params(kwargs):
    known = _param_names()
    out = []
    for name, value in kwargs.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"unknown parameter {name!r}{hint} (embark.params() lists them)")
        out.append((name, _param_text(name, value)))
    return out


# ---- data -------------------------------------------------------------------

def _floats(a, what, ndim):
    """float32 read in place; a list is converted, another dtype refused."""
    if a is None:
        return None
    if not isinstance(a, np.ndarray):
        a = np.asarray(a, dtype=np.float32)
    elif a.dtype != np.float32:
        raise TypeError(f"{what}: dtype {a.dtype}; embark reads float32 (use {what.split()[0]}.astype(np.float32))")
    return _shaped(a, what, ndim)


def _integers(a, what, ndim):
    """int64 or uint64 read in place; other integer dtypes converted."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what}: dtype {a.dtype}; ids are integers (int64 or uint64)")
    if a.dtype not in (np.int64, np.uint64):
        a = a.astype(np.uint64 if a.dtype.kind == "u" else np.int64)
    return _shaped(a, what, ndim)


def _shaped(a, what, ndim):
    if a.ndim != ndim:
        want = "[rows]" if ndim == 1 else "[rows, columns]"
        raise ValueError(f"{what}: shape {a.shape}; expected {want}")
    return np.ascontiguousarray(a)


def _labels(y):
    if y is None:
        return None
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"labels: dtype {y.dtype}; labels are 0 or 1")
    if y.dtype != np.float32:
        y = y.astype(np.float32)
    return _shaped(y, "labels", 1)


class Dataset:
    """Samples in numpy arrays, read in place (never copied whole).

    labels  [rows]: 0 or 1 (float32; bool and integer labels are converted)
    dense   [rows, D] float32: numeric columns (NaN: missing)
    ids     [rows, F] int64 or uint64: one categorical id per column
    csr     a scipy.sparse matrix, or (indptr, indices[, values]): weighted
            ids per row (libsvm's features; values float32, absent: 1)
    dense_names, id_names: column names of a new model (default d0.., c0..)

    Against a model the columns meet its data spec in order: see
    docs/python.md ("Arrays") for each format.
    """

    def __init__(self, labels=None, dense=None, ids=None, csr=None, *, dense_names=None, id_names=None):
        self.labels = _labels(labels)
        self.dense = _floats(dense, "dense", 2)
        self.ids = _integers(ids, "ids", 2)
        indptr = indices = values = None
        if csr is not None:
            if hasattr(csr, "tocsr"):
                m = csr.tocsr()
                parts = (m.indptr, m.indices, m.data)
            elif isinstance(csr, (tuple, list)) and len(csr) in (2, 3):
                parts = tuple(csr) + ((None,) if len(csr) == 2 else ())
            else:
                raise TypeError("csr: expected a scipy.sparse matrix or (indptr, indices[, values])")
            indptr = _integers(parts[0], "csr indptr", 1).astype(np.int64, copy=False)
            indices = _integers(parts[1], "csr indices", 1)
            values = _floats(parts[2], "csr values", 1)
        self.csr = None if indptr is None else (indptr, indices, values)
        self._native = _embark.Arrays(self.labels, self.dense, self.ids, indptr, indices, values,
                                      list(dense_names or []), list(id_names or []))

    def __len__(self):
        return len(self._native)

    def __repr__(self):
        parts = [f"rows={len(self)}"]
        if self.dense is not None:
            parts.append(f"dense={self.dense.shape[1]}")
        if self.ids is not None:
            parts.append(f"ids={self.ids.shape[1]}")
        if self.csr is not None:
            parts.append(f"csr_nnz={len(self.csr[1])}")
        return f"embark.Dataset({', '.join(parts)})"


def _source(data, what):
    """(files, None) or (None, Dataset) from a path, a list of paths or a Dataset."""
    if data is None:
        return None, None
    if isinstance(data, Dataset):
        return None, data
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(f, (str, os.PathLike)) for f in data):
        files = [os.fspath(f) for f in data]
        for f in files:
            if not os.path.exists(f):
                raise NotFound(f"{what}: '{f}': no such file")
        return files, None
    raise TypeError(f"{what}: expected a file path, a list of paths or an embark.Dataset, "
                    f"not {type(data).__name__}")


# ---- training ---------------------------------------------------------------

class Trainer:
    """A model being trained: new, or resumed from a checkpoint (resume=DIR).

    data, valid: training and validation data (paths or a Dataset); a new
        model takes its data spec from data, or from format/schema.
    out: the checkpoint directory fit() writes (default: a temporary one,
        removed with the trainer; save() writes one anywhere).
    schema: a CSV schema file (TOML) for CSV data; config: a TOML file of
        parameters; progress: the CLI's progress line on stderr.
    **params: training parameters by name (embark.params()).
    """

    def __init__(self, data=None, valid=None, out=None, *, schema=None, resume=None, config=None,
                 progress=False, **params):
        args = _embark.TrainerArgs()
        args.params = _params(params)
        files, arrays = _source(data, "data")
        args.train_files = files or []
        args.train_arrays = arrays._native if arrays is not None else None
        files, arrays = _source(valid, "valid")
        args.valid_files = files or []
        args.valid_arrays = arrays._native if arrays is not None else None
        for name, path in (("schema", schema), ("resume", resume), ("config", config)):
            if path is not None and not os.path.exists(path):
                raise NotFound(f"{name}: '{os.fspath(path)}': no such file or directory")
        args.schema = os.fspath(schema) if schema is not None else ""
        args.resume = os.fspath(resume) if resume is not None else ""
        args.config = os.fspath(config) if config is not None else ""
        self._tmp = None
        if out is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="embark-")
            out = os.path.join(self._tmp.name, "model")
        self.out = args.out = os.fspath(out)
        args.progress = bool(progress)
        self._has_data = data is not None
        self._native = _embark.Trainer(args)
        self.report = None

    def fit(self, callback=None):
        """Trains to the configured epochs (or an early stop) and writes the
        checkpoint to `out`; returns this fit's history records (training
        loss, validation metrics per evaluation). callback(record) is called
        with each record as it comes; returning False stops training (the
        checkpoint keeps the epoch's cursor). The report of the run is in
        self.report."""
        if not self._has_data:
            raise InvalidArgument("fit: no training data: give data= to the Trainer")
        records = []

        def on_record(text):
            record = json.loads(text)
            records.append(record)
            return callback is None or callback(record) is not False

        self.report = self._native.fit(on_record)
        return records

    def stop(self):
        """Asks a fit running on another thread to stop after its step."""
        self._native.stop()

    def step(self, batch):
        """One training step on a Dataset (all its rows) or a batch from
        batches(); returns {"samples", "loss" (mean), "step"}."""
        if isinstance(batch, Dataset):
            if batch.labels is None:
                raise InvalidArgument("step: training needs labels")
            batch = self._native.encode(batch._native, 0, len(batch))
        elif not isinstance(batch, _embark.Batch):
            raise TypeError(f"step: expected an embark.Dataset or a batch from batches(), not {type(batch).__name__}")
        return self._native.step(batch)

    def batches(self, data, batch_size=4096, max_bad_lines=0):
        """Batches of data (paths or a Dataset), in order, for step()."""
        files, arrays = _source(data, "data")
        if arrays is not None:
            for i in range(0, len(arrays), batch_size):
                yield self._native.encode(arrays._native, i, min(len(arrays), i + batch_size))
            return
        reader = self._native.read(files, batch_size, max_bad_lines)
        while (b := reader.next()) is not None:
            yield b

    def predict(self, data):
        """Click probabilities of the current model, float32 [rows]."""
        files, arrays = _source(data, "data")
        if arrays is not None:
            return self._native.predict_arrays(arrays._native)
        return self._native.predict_files(files)

    def evaluate(self, data):
        """Exact metrics on labelled data: auc, logloss, ne, ctr, mean_pred,
        calibration, count."""
        files, arrays = _source(data, "data")
        if arrays is not None:
            return self._native.evaluate_arrays(arrays._native)
        return self._native.evaluate_files(files)

    def save(self, dir):
        """Writes a checkpoint (model, optimizer state, history) to dir,
        atomically; the CLI loads it (`embark serve --model dir`)."""
        self._native.save(os.fspath(dir))

    @property
    def info(self):
        return self._native.info()

    @property
    def history(self):
        """The run's history as history.json holds it (docs/report.md)."""
        return json.loads(self._native.history())

    def __repr__(self):
        i = self.info
        return f"embark.Trainer(model={i['model']!r}, step={i['step']}, out={self.out!r})"


def train(data, valid=None, out=None, *, callback=None, **kwargs):
    """Trainer(data, valid, out, **kwargs), fitted; returns the trainer (its
    history, report, predict, evaluate and save)."""
    trainer = Trainer(data, valid, out, **kwargs)
    trainer.fit(callback)
    return trainer


# ---- trained models ---------------------------------------------------------

class Model:
    """A checkpoint loaded for scoring, verified byte for byte: the scoring
    path of `embark predict`, `eval` and `serve`, bit for bit."""

    def __init__(self, dir, threads=0):
        self.dir = os.fspath(dir)
        if not os.path.isdir(self.dir):
            raise NotFound(f"'{self.dir}': no such directory")
        self._native = _embark.Model(self.dir, int(threads))

    def predict(self, data, max_bad_lines=0):
        """Click probabilities, float32 [rows] (files: one per scored line)."""
        files, arrays = _source(data, "data")
        if arrays is not None:
            return self._native.predict_arrays(arrays._native)
        return self._native.predict_files(files, max_bad_lines)

    def evaluate(self, data, max_bad_lines=0):
        files, arrays = _source(data, "data")
        if arrays is not None:
            return self._native.evaluate_arrays(arrays._native)
        return self._native.evaluate_files(files, max_bad_lines)

    def save(self, dir):
        """Copies the checkpoint to dir (new, empty, or a checkpoint it
        replaces), through a temporary directory beside it."""
        dest = os.fspath(dir).rstrip("/") or "/"
        if os.path.abspath(dest) == os.path.abspath(self.dir):
            return
        if os.path.exists(dest) and (not os.path.isdir(dest) or (
                os.listdir(dest) and not os.path.exists(os.path.join(dest, "MANIFEST.json")))):
            raise InvalidArgument(f"'{dest}' exists and is not an embark checkpoint: choose another path")
        tmp = f"{dest}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(self.dir, tmp)
            if os.path.exists(dest):
                old = f"{dest}.old-{os.getpid()}"
                os.rename(dest, old)
                os.rename(tmp, dest)
                shutil.rmtree(old)
            else:
                os.rename(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @property
    def info(self):
        return self._native.info()

    @property
    def history(self):
        """history.json's content, or None for a checkpoint without one."""
        text = self._native.history()
        return json.loads(text) if text else None

    def __repr__(self):
        return f"embark.Model({self.dir!r}, model={self.info['model']!r})"


def load(dir, threads=0):
    """The checkpoint in dir, for scoring (threads: 0 = one per core)."""
    return Model(dir, threads)


def plot_history(source, out_dir):
    """Draws a training history as `embark report` does: PNG charts and an
    index.html in out_dir. source: a Trainer, a Model, a checkpoint
    directory or a history dict. Returns {"html": path, "images": [paths]}."""
    from . import report
    if isinstance(source, (Trainer, Model)):
        history = source.history
        if history is None:
            raise InvalidArgument(f"{source.dir}: the checkpoint has no history")
        source = history
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    try:
        return report.plot_history(source, os.fspath(out_dir))
    except report.ReportError as e:
        raise InvalidArgument(str(e)) from None
