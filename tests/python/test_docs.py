"""The examples of docs/python.md run as written: every ```python block, in
order, in one namespace, in a scratch directory."""

import os
import re

from conftest import REPO


def test_the_examples_in_docs_python_md_run(tmp_path, monkeypatch, capsys):
    text = open(os.path.join(REPO, "docs", "python.md")).read()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/python.md example {i + 1}", "exec"), namespace)
    assert (tmp_path / "ctr-model" / "MANIFEST.json").exists()
    assert (tmp_path / "report" / "index.html").exists()
    assert "did you mean 'embedding_dim'" in capsys.readouterr().out
