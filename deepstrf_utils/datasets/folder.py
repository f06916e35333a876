"""Your own recordings: a folder of WAV stimuli and per-stimulus spike files.

Layout (the one of the Meliza lab's starling data, ``melizalab/comp-neurosci``)::

    <path>/
      stimuli/A8.wav               one WAV per stimulus (any sample rate, mono or stereo)
      spikes/<unit>/A8.txt         spike times of <unit> to stimulus A8, one line per trial
      spikes/<unit>/A8.npy         ... or a NumPy array (R, T) of responses already binned
                                   at dt_ms (spike counts, or any signal)

* neurons = the sub-folders of ``spikes/`` (sorted by name); stimuli = the WAV files of
  ``stimuli/`` (sorted by name) that at least one unit has a response file for. Names
  match whatever their case (``S1.txt`` is the response to ``s1.wav``; extensions ``.wav``,
  ``.WAV``, ``.txt``, ``.TXT``, ``.npy`` ...); two files whose names differ only by case
  raise a ValueError naming both.
* ``.txt``: one line per trial; spike times from stimulus onset, in ms (``time_unit="ms"``)
  or seconds (``time_unit="s"``), separated by spaces, tabs or commas; an empty line is a
  trial without spikes; an empty (0-byte) file, a token that is not a number and ``nan`` /
  ``inf`` raise a ValueError naming the file and line. With the default
  ``time_unit=None`` the times are read as ms, and a unit whose spikes after onset all lie
  within 1/100 of its stimuli's duration (in ms: what seconds read as ms look like) raises.
* Response window: ``pad_before_ms`` before the stimulus onset to ``pad_after_ms`` after
  its end (multiples of ``dt_ms``); the cochleagram is silence (0) in the padding (the
  sound's own tail enters the first bins after its end, as the analysis window is causal),
  so that an offset response to the end of the sound is kept. A spike at time ``s`` goes
  to bin ``floor(s / dt_ms) + pad_before_ms / dt_ms``; spikes outside the window are
  dropped and counted.
* ``.npy``: ``(R, T)`` or ``(T,)`` (one trial); T must equal the response window's bin count.
* Units heard different numbers of trials: responses are padded with NaN to the largest R;
  a unit without a file for a stimulus gets all-NaN trials.
* Stimuli become cochleagrams (`deepstrf_utils.spectrogram.cochleagram`, hop = ``dt_ms``),
  floored at ``threshold_db`` below the loudest bin of the whole stimulus set. Every WAV
  must have the same sample rate (a ValueError lists the rates) unless ``resample_to``
  resamples them all.
* What was used, skipped and dropped: ``dataset.meta["load_report"]`` (spikes kept and
  dropped before / after the window per unit, stimuli used, stimuli skipped and why,
  files resampled), a one-line INFO summary, and a WARNING whenever spikes or stimuli were
  dropped.

A folder may also use ``stimuli/`` + ``responses/`` instead of ``spikes/``.
"""
from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from ..spectrogram import cochleagram_set, load_wav, n_frames
from .base import ResponseDataset
from .io import bin_spike_times, spike_bin_index, stack_trials

log = logging.getLogger(__name__)

__all__ = ["load_folder", "bin_spike_times", "read_spike_file", "stack_trials",
           "is_available"]

_SPLIT = re.compile(r"[\s,;]+")
_RESPONSE_EXT = (".txt", ".npy")
#: A unit is taken for seconds read as ms when its spikes after onset all lie within this
#: fraction of its stimuli's duration (and it has at least `_MIN_SPIKES_UNIT_CHECK`).
_SECONDS_FRACTION = 0.01
_MIN_SPIKES_UNIT_CHECK = 3


def read_spike_file(path) -> List[np.ndarray]:
    """Read a spike-time text file: one line per trial, times separated by spaces, tabs,
    commas or semicolons (in the file's unit; :func:`load_folder` reads ms or seconds).

    Returns:
        list of R arrays (one per line; an empty line is an empty trial). A trailing
        newline does not add a trial.

    Raises:
        ValueError: an empty (0-byte) file, a value that is not a number, or ``nan`` /
            ``inf`` (names file, line and token).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: expected a text file of spike times, could not decode it") from err
    if not text:
        raise ValueError(f"{path} is empty (0 bytes): expected one line of spike times per trial (an empty "
                         "line for a trial without spikes); delete the file if the unit did not hear this "
                         "stimulus")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    trials = []
    for i, line in enumerate(lines, start=1):
        tokens = [tok for tok in _SPLIT.split(line.strip()) if tok]
        try:
            values = np.array([float(tok) for tok in tokens], dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"{path}, line {i}: expected spike times separated by spaces or commas, "
                             f"got {line.strip()[:60]!r}") from err
        bad = [tok for tok, v in zip(tokens, values) if not np.isfinite(v)]
        if bad:
            raise ValueError(f"{path}, line {i}: expected finite spike times, got {bad[0]!r}")
        trials.append(values)
    return trials


def _response_dir(path: Path) -> Path:
    for name in ("spikes", "responses"):
        if (path / name).is_dir():
            return path / name
    raise FileNotFoundError(f"expected a 'spikes/' (or 'responses/') folder with one "
                            f"sub-folder per unit in {path}, found none")


def is_available(root, **_) -> bool:
    """Whether ``root/folder`` (the default location for load_dataset('folder')) is usable."""
    path = Path(root) / "folder"
    return (path / "stimuli").is_dir() and any((path / d).is_dir() for d in ("spikes", "responses"))


def _by_stem(files, what: str) -> Dict[str, Path]:
    """``{lower-case stem: file}``; ValueError naming both files when two stems differ only by case
    (or a stem has two response files, .txt and .npy)."""
    out: Dict[str, Path] = {}
    for f in sorted(files):
        key = f.stem.lower()
        if key in out:
            raise ValueError(f"expected one {what} per name, found {out[key]} and {f} (names are matched "
                             "whatever their case); remove or rename one")
        out[key] = f
    return out


def _bins(ms: float, dt_ms: float, name: str) -> int:
    if not (np.isfinite(ms) and ms >= 0):
        raise ValueError(f"expected {name} >= 0 (ms), got {ms!r}")
    k = int(round(ms / dt_ms))
    if abs(k * dt_ms - ms) > 1e-6 * max(dt_ms, 1.0):
        raise ValueError(f"expected {name} to be a multiple of dt_ms={dt_ms:g} ms, got {ms:g}")
    return k


def _waves(used, sr, resample_to, report):
    """Read the WAVs; one sample rate for all (or resampled to ``resample_to``) -> (waves, rate,
    the files' own rates)."""
    waves = [load_wav(w, sr=sr) for w in used]
    rates = sorted({r for _, r in waves})
    if resample_to is None:
        if len(rates) > 1:
            groups = "; ".join(f"{r:g} Hz: " + ", ".join(w.name for w, (_, wr) in zip(used, waves) if wr == r)
                               for r in rates)
            raise ValueError(f"expected every WAV at one sample rate, found {groups}. The top band would be "
                             f"limited by the lowest rate for every stimulus; convert the files, or pass "
                             f"resample_to={rates[-1]:g} (bands above a file's own Nyquist then hold no sound)")
        return [x for x, _ in waves], rates[0], [r for _, r in waves]
    if not (np.isfinite(resample_to) and resample_to > 0):
        raise ValueError(f"expected resample_to to be a sample rate in Hz (> 0) or None, got {resample_to!r}")
    from scipy.signal import resample_poly

    out = []
    for w, (x, rate) in zip(used, waves):
        if rate != resample_to:
            ratio = Fraction(int(round(resample_to)), int(round(rate)))
            x = resample_poly(x, ratio.numerator, ratio.denominator)
            report["resampled"][w.stem] = rate
            if rate < resample_to:
                log.warning("%s: upsampled from %g Hz to %g Hz; its bands above %g Hz (its Nyquist) hold no sound",
                            w, rate, resample_to, rate / 2)
        out.append(x)
    return out, float(resample_to), [r for _, r in waves]


def _seconds_check(unit: Path, spikes: list, time_unit: Optional[str], dt_ms: float) -> None:
    """ValueError when a unit's spikes read as ms look like seconds (``time_unit=None`` only).

    ``spikes``: (file, trials, T_stimulus) per response file of the unit."""
    if time_unit is not None:
        return
    after = []
    for f, trials, T in spikes:
        t = np.concatenate(trials) if trials else np.zeros(0)
        after.append((f, t[t >= 0], T))
    n = sum(t.size for _, t, _ in after)
    with_spikes = [(f, t, T) for f, t, T in after if t.size]
    if n < _MIN_SPIKES_UNIT_CHECK or not all(t.max() < _SECONDS_FRACTION * T * dt_ms for _, t, T in with_spikes):
        return
    durations = sorted({T * dt_ms for _, _, T in with_spikes})
    lasting = f"{durations[0]:g}" if len(durations) == 1 else f"{durations[0]:g}-{durations[-1]:g}"
    raise ValueError(
        f"{with_spikes[0][0]}: expected spike times in ms, but the {n} spikes of unit {unit.name} after onset "
        f"all lie within {max(t.max() for _, t, _ in with_spikes):.3g} ms of it while its stimuli last "
        f"{lasting} ms, as seconds read as ms would; read as ms they all fall in the first bins. Pass "
        "time_unit='s' if the files hold seconds, or time_unit='ms' to read them as ms anyway")


def _summarise(path: Path, report: dict) -> None:
    """The one-line INFO summary, and WARNINGs for dropped spikes and skipped stimuli."""
    units = report["units"]
    kept = sum(u["spikes_kept"] for u in units.values())
    before = sum(u["dropped_before"] for u in units.values())
    after = sum(u["dropped_after"] for u in units.values())
    log.info("%s: %d units, %d stimuli used, %d skipped; %d spikes kept, %d dropped (%d before the window, "
             "%d after it)", path, len(units), len(report["stimuli_used"]), len(report["stimuli_skipped"]),
             kept, before + after, before, after)
    if before + after:
        lost = [f"{n} {u['dropped_before']}/{u['dropped_after']}" for n, u in units.items()
                if u["dropped_before"] + u["dropped_after"]]
        log.warning("%s: dropped %d of %d spikes outside the response window (%d before it, %d after it; per "
                    "unit before/after: %s%s); pass pad_before_ms / pad_after_ms to keep them (counts in "
                    "dataset.meta['load_report'])", path, before + after, kept + before + after, before, after,
                    ", ".join(lost[:10]), " ..." if len(lost) > 10 else "")
    missing = {s: r for s, r in report["stimuli_skipped"].items() if r.startswith("no WAV")}
    if missing:
        log.warning("%s: response files name %d stimuli that have no WAV in stimuli/; skipped: %s%s (reasons in "
                    "dataset.meta['load_report']['stimuli_skipped'])", path, len(missing),
                    ", ".join(list(missing)[:20]), " ..." if len(missing) > 20 else "")


def load_folder(path, dt_ms: float = 5.0, n_bands: int = 34, min_freq: float = 500.0,
                max_freq: Optional[float] = None, window_ms: float = 10.0,
                threshold_db: float = 60.0, sr: Optional[float] = None,
                split_spec: Optional[dict] = None, name: str = "folder", time_unit: Optional[str] = None,
                pad_before_ms: float = 0.0, pad_after_ms: float = 0.0,
                resample_to: Optional[float] = None) -> ResponseDataset:
    """Load a folder of WAV stimuli and per-unit spike files (layout in the module docstring).

    Args:
        path: the folder (holding ``stimuli/`` and ``spikes/``).
        dt_ms: bin width (ms) of spectrograms and responses.
        n_bands, min_freq, window_ms, threshold_db: `cochleagram` settings.
        max_freq: highest band centre (Hz); None = ``min(22627, 0.95 * sr / 2)`` (logged).
            Above a file's Nyquist frequency: ValueError naming the file and its rate.
        sr: expected sample rate (Hz) of every WAV; a file at another rate raises.
        split_spec: ResponseDataset split rule; default a random 20 % test / 10 % val per
            seed.
        name: dataset name.
        time_unit: ``"ms"`` or ``"s"``: the unit of the ``.txt`` spike times; None = ms,
            refusing units whose times look like seconds.
        pad_before_ms, pad_after_ms: response window before the onset / after the end of
            each stimulus (multiples of ``dt_ms``; silence in the cochleagram).
        resample_to: resample every WAV to this rate (Hz); None = all WAVs must share one.

    Returns:
        ResponseDataset: stimuli ``(F, T_i)``, responses ``(N, R_max, T_i)`` (NaN-padded),
        ``T_i`` = the padded window; neuron_ids = unit folder names, stim_names = WAV stems;
        ``meta["load_report"]``: spikes kept / dropped per unit, stimuli used / skipped.

    Raises:
        FileNotFoundError: missing folder / no WAV / no unit folder / no response file
            named after a WAV.
        ValueError: unreadable WAV, mixed or wrong sample rates, two files whose names
            differ only by case, a bad or empty spike file, spike times that look like
            seconds, an ``.npy`` of the wrong length, a bad option.
    """
    path = Path(path)
    if isinstance(dt_ms, bool) or not isinstance(dt_ms, (int, float)) or not (np.isfinite(dt_ms) and dt_ms > 0):
        raise ValueError(f"expected dt_ms to be a bin width in ms (a finite number > 0), got {dt_ms!r}")
    if time_unit not in (None, "ms", "s"):
        raise ValueError(f"expected time_unit 'ms', 's' or None (ms, checked), got {time_unit!r}")
    pre, post = _bins(pad_before_ms, dt_ms, "pad_before_ms"), _bins(pad_after_ms, dt_ms, "pad_after_ms")
    if not path.is_dir():
        raise FileNotFoundError(f"expected a recordings folder at {path}, found none")
    stim_dir = path / "stimuli"
    wavs = _by_stem([p for p in stim_dir.iterdir() if p.suffix.lower() == ".wav" and p.is_file()]
                    if stim_dir.is_dir() else [], "WAV")
    if not wavs:
        raise FileNotFoundError(f"expected WAV stimuli in {stim_dir}/ (e.g. stimuli/A8.wav), found none")
    resp_dir = _response_dir(path)
    units = sorted(p for p in resp_dir.iterdir() if p.is_dir())
    if not units:
        raise FileNotFoundError(f"expected one sub-folder per unit in {resp_dir}/, found none")
    files = {u: _by_stem([f for f in u.iterdir() if f.suffix.lower() in _RESPONSE_EXT and f.is_file()],
                         "response file") for u in units}

    report = {"time_unit": time_unit or "ms", "pad_before_ms": float(pad_before_ms),
              "pad_after_ms": float(pad_after_ms), "stimuli_used": [], "stimuli_skipped": {}, "resampled": {},
              "units": {u.name: {"spikes_kept": 0, "dropped_before": 0, "dropped_after": 0} for u in units}}
    used = [w for key, w in sorted(wavs.items(), key=lambda kv: kv[1].name) if any(key in files[u] for u in units)]
    for key, w in wavs.items():
        if w not in used:
            report["stimuli_skipped"][w.stem] = "no unit has a response file for it"
    for key in sorted({k for u in units for k in files[u]} - set(wavs)):
        heard = [files[u][key] for u in units if key in files[u]]
        report["stimuli_skipped"][heard[0].stem] = (f"no WAV in stimuli/; {len(heard)} response file(s), e.g. "
                                                    f"{heard[0].parent.name}/{heard[0].name}")
    if not used:
        example = min(w.stem for w in wavs.values())
        raise FileNotFoundError(f"no unit folder in {resp_dir}/ has a response file named after "
                                f"a stimulus of {stim_dir}/ (e.g. {units[0].name}/{example}.txt)")
    report["stimuli_used"] = [w.stem for w in used]

    waves, rate, file_rates = _waves(used, sr, resample_to, report)
    stimuli, cf_hz, front = cochleagram_set([(x, rate) for x in waves], names=[f"{w} (sample rate {rate:g} Hz)" for w in used],
                                            n_bands=n_bands, min_freq=min_freq, max_freq=max_freq,
                                            window_ms=window_ms, hop_ms=dt_ms, threshold_db=threshold_db,
                                            where=str(path), pad_bins=(pre, post))
    ref, max_freq = front["ref_db"], front["max_freq_hz"]
    lengths = [n_frames(x.size, rate, dt_ms) for x in waves]

    scale = 1000.0 if time_unit == "s" else 1.0
    per_stim: List[list] = [[] for _ in used]
    for unit in units:
        texts = {}
        for j, w in enumerate(used):
            f = files[unit].get(w.stem.lower())
            if f is not None and f.suffix.lower() == ".txt":
                texts[f] = (read_spike_file(f), lengths[j])
        _seconds_check(unit, [(f, tr, T) for f, (tr, T) in texts.items()], time_unit, dt_ms)
        counts = report["units"][unit.name]
        for j, (w, spec) in enumerate(zip(used, stimuli)):
            T = spec.shape[1]
            f = files[unit].get(w.stem.lower())
            if f is None:
                per_stim[j].append(None)
            elif f.suffix.lower() == ".txt":
                trials = texts[f][0]
                binned = [bin_spike_times(t * scale, T, dt_ms, onset_bin=pre) for t in trials]
                n_all = sum(t.size for t in trials)
                n_before = sum(int((spike_bin_index(t * scale, dt_ms, pre) < 0).sum()) for t in trials)
                counts["spikes_kept"] += int(sum(b.sum() for b in binned))
                counts["dropped_before"] += n_before
                counts["dropped_after"] += n_all - n_before - int(sum(b.sum() for b in binned))
                per_stim[j].append(np.stack(binned) if binned else None)
            else:
                per_stim[j].append(_read_npy(f, T, dt_ms, w, pre, post))
    responses = [stack_trials(per_unit, spec.shape[1]) for per_unit, spec in zip(per_stim, stimuli)]
    _summarise(path, report)

    neurons = pd.DataFrame({"id": [u.name for u in units]})
    return ResponseDataset(
        stimuli=stimuli, responses=responses, dt_ms=dt_ms, cf_hz=cf_hz,
        neuron_ids=[u.name for u in units], neurons=neurons,
        stim_names=[w.stem for w in used], stim_types=["unknown"] * len(used), name=name,
        split_spec=split_spec or {"test": "random", "test_fraction": 0.2, "val_fraction": 0.1},
        meta={"source": str(path), "sample_rates_hz": file_rates, "sample_rate_hz": rate,
              "max_freq_hz": float(max_freq),
              "threshold_db": threshold_db, "ref_db": ref, "load_report": report,
              "preprocessing": f"cochleagram (causal 10 ms Hann, hop dt_ms, log bands) with {pre} silent bins "
                               f"before and {post} after each sound; spike times in {report['time_unit']} binned "
                               f"with floor(t / dt_ms) + {pre}, kept within the window"},
    )


def _read_npy(f: Path, T: int, dt_ms: float, wav: Path, pre: int, post: int) -> np.ndarray:
    """An ``.npy`` response ``(R, T)`` (or ``(T,)``) of the padded window; ValueError naming the file."""
    try:
        arr = np.load(f, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{f}: could not read the NumPy array: {err}") from err
    arr = np.atleast_2d(np.asarray(arr, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[1] != T:
        raise ValueError(f"{f}: expected an array (R, T) with T={T} bins of {dt_ms} ms (the length of {wav.name}"
                         f"{f' with {pre} + {post} padding bins' if pre or post else ''}), got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{f}: expected finite responses (NaN marks a missing trial), found inf")
    return arr
