"""The README's worked example of fitting your own recordings runs as written."""
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(heading: str) -> str:
    """The first ```python block of the README section that starts with ``heading``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    section = text[start:text.find("\n## ", start + 1)]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under {heading!r} in README.md"
    return match.group(1)


def test_own_recordings_example_runs_and_scores_the_planted_neurons(tmp_path, monkeypatch):
    pytest.importorskip("pynwb")
    from deepstrf_utils.datasets import load_dataset

    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(readme_block("## Your own recordings"), "README.md (Your own recordings)", "exec"), ns)
    scores = np.asarray(ns["scores"])
    assert scores.shape == (ns["N"],)
    assert np.all(scores > 0.8), scores          # each neuron follows one band: an LN finds it
    back = load_dataset("nwb:my_recording.nwb")  # what `make figures DATASETS=nwb:my_recording.nwb` reads
    data = ns["data"]
    assert back.n_neurons == data.n_neurons and len(back) == len(data) and back.dt_ms == data.dt_ms
    for a, b in zip(back.stimuli, data.stimuli):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_citing_section_and_citation_file_give_the_same_dois():
    text = README.read_text(encoding="utf-8")
    citing = text[text.index("\n## Citing\n"):]
    citing = citing[:citing.find("\n## ", 1)] if "\n## " in citing[1:] else citing
    cff = (README.parent / "CITATION.cff").read_text(encoding="utf-8")
    doi = re.compile(r"10\.\d{4,9}/[^\s)\]\"']+")
    in_readme = {d.rstrip(".,;") for d in doi.findall(citing)}
    in_cff = {d.rstrip(".,;") for d in doi.findall(cff)}
    assert in_readme and in_readme == in_cff, (sorted(in_readme - in_cff), sorted(in_cff - in_readme))
