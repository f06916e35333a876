"""The project's auditory front end: waveform -> log-compressed, band-pooled spectrogram.

`cochleagram` follows the recipe of Harper et al. (2016) and Rahman et al. (2019) for NS1
(what the AdapTrans paper fed its models): a short-time Fourier transform with a 10 ms Hann
window and a 5 ms hop, the power pooled into log-spaced triangular bands (34 bands from
500 Hz to 22.6 kHz, i.e. 1/6 octave apart), converted to dB, clipped at a floor
``threshold_db`` below a reference level and shifted so that the floor is 0.

Framing is *causal*: time bin ``t`` covers the sound in ``[t * hop, (t + 1) * hop)`` and its
analysis window is the ``window_ms`` of sound that ends at ``(t + 1) * hop`` (zeros before
the start). The number of bins is therefore ``T = floor(duration / hop)``, the same count as
spike-time bins of width ``hop``: a 4.995 s NS1 clip gives 999 bins at 5 ms. Bin ``t`` of
the spectrogram never contains sound played after bin ``t`` of the response.

`load_wav` reads WAV files (also extension-less ones, such as the NS1 stimuli) with
`scipy.io.wavfile` and raises errors that name the file.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

log = logging.getLogger(__name__)

#: power offset added before the log, and the lowest possible floor (dB)
EPS_POWER = 1e-12
EPS_DB = 10.0 * np.log10(EPS_POWER)

__all__ = ["cochleagram", "cochleagram_set", "log_band_filterbank", "band_centre_frequencies",
           "apply_floor", "n_frames", "load_wav", "default_max_freq"]


def band_centre_frequencies(n_bands: int = 34, min_freq: float = 500.0,
                            max_freq: float = 22627.0) -> np.ndarray:
    """Log-spaced band centre frequencies in Hz, low to high.

    Args:
        n_bands: number of bands F.
        min_freq, max_freq: centre frequencies of the lowest and highest band (Hz).

    Returns:
        cf_hz: (F,) float64, ``geomspace(min_freq, max_freq, F)``. With the defaults the
        bands are 1/6 octave apart (500 Hz * 2**(k/6), k = 0..33).
    """
    if int(n_bands) != n_bands or n_bands < 1:
        raise ValueError(f"expected n_bands to be a positive integer, got {n_bands!r}")
    if not (0 < min_freq < max_freq):
        raise ValueError(f"expected 0 < min_freq < max_freq, got min_freq={min_freq}, "
                         f"max_freq={max_freq}")
    if n_bands == 1:
        return np.array([np.sqrt(min_freq * max_freq)])
    return np.geomspace(min_freq, max_freq, int(n_bands))


def log_band_filterbank(cf_hz: np.ndarray, sr: float, n_fft: int) -> np.ndarray:
    """Triangular filters on a log-frequency axis, one per band, each summing to 1.

    Filter ``k`` rises linearly in log-frequency from ``cf[k-1]`` to ``cf[k]`` and falls to
    ``cf[k+1]`` (the outer edges of the first and last band mirror their inner spacing;
    frequencies above the Nyquist frequency get no weight). Each row is normalised to sum
    to 1, so a band value is a weighted *mean* of the power in its FFT bins, and white noise
    gives a flat spectrogram. A band narrower than the FFT bin spacing still gets the
    bin(s) nearest its centre, so no band is ever empty.

    Args:
        cf_hz: (F,) band centre frequencies (Hz), increasing.
        sr: sample rate (Hz).
        n_fft: FFT length; the filters act on its ``n_fft // 2 + 1`` frequency bins.

    Returns:
        (F, n_fft // 2 + 1) float64 weights.
    """
    cf = np.asarray(cf_hz, dtype=np.float64)
    n_bins = n_fft // 2 + 1
    freqs = np.arange(n_bins) * sr / n_fft
    logc = np.log2(cf)
    if cf.size > 1:
        step_lo = np.diff(logc)[0]
        step_hi = np.diff(logc)[-1]
    else:
        step_lo = step_hi = 1.0 / 6.0
    edges = np.concatenate([[logc[0] - step_lo], logc, [logc[-1] + step_hi]])
    with np.errstate(divide="ignore"):
        logf = np.log2(np.where(freqs > 0, freqs, np.nan))
    weights = np.zeros((cf.size, n_bins))
    for k in range(cf.size):
        lo, mid, hi = edges[k], edges[k + 1], edges[k + 2]
        rise = (logf - lo) / (mid - lo)
        fall = (hi - logf) / (hi - mid)
        w = np.clip(np.minimum(rise, fall), 0.0, None)
        w = np.nan_to_num(w, nan=0.0)
        if w.sum() <= 0:  # band narrower than one FFT bin: take the nearest bin
            w[np.argmin(np.abs(freqs - cf[k]))] = 1.0
        weights[k] = w / w.sum()
    return weights


def n_frames(n_samples: int, sr: float, hop_ms: float = 5.0) -> int:
    """Number of time bins `cochleagram` returns: ``floor((n_samples + 0.5) / hop_samples)``.

    A bin counts when it ends within half a sample of the end of the sound, so that 4.995 s
    at 5 ms gives 999 bins also at sample rates with a fractional number of samples per bin
    (e.g. 48828.125 Hz, where 4.995 s rounds to 243896 samples = 998.998 bins).
    """
    hop = sr * hop_ms / 1000.0
    return int(np.floor((n_samples + 0.5) / hop + 1e-9))


def apply_floor(spec_db: np.ndarray, threshold_db: float = 60.0,
                ref_db: Optional[float] = None) -> np.ndarray:
    """Clip a dB spectrogram at ``ref_db - threshold_db`` and shift the floor to 0.

    Args:
        spec_db: (F, T) power in dB.
        threshold_db: dynamic range kept below the reference (dB), > 0.
        ref_db: reference level in dB; None uses ``spec_db.max()`` (per clip). Give one
            value for a whole stimulus set so that all clips share the same scale.

    Returns:
        (F, T) float32, ``max(spec_db, floor) - floor`` with
        ``floor = max(ref_db - threshold_db, -120 dB)`` (>= 0; 0 = at or below the floor).
        The absolute -120 dB limit (the 1e-12 power offset) makes digital silence map to 0
        even when it is its own reference.
    """
    if not threshold_db > 0:
        raise ValueError(f"expected threshold_db > 0 (dB below the reference), got {threshold_db}")
    spec_db = np.asarray(spec_db, dtype=np.float64)
    ref = float(spec_db.max()) if ref_db is None else float(ref_db)
    floor = max(ref - threshold_db, EPS_DB)
    return (np.maximum(spec_db, floor) - floor).astype(np.float32)


def cochleagram(wave, sr: float, n_bands: int = 34, min_freq: float = 500.0,
                max_freq: float = 22627.0, window_ms: float = 10.0, hop_ms: float = 5.0,
                threshold_db: Optional[float] = 60.0, ref_db: Optional[float] = None,
                n_fft: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Log-compressed spectrogram in log-spaced bands: the project's auditory front end.

    Steps: (1) causal framing, window ``t`` = the ``window_ms`` of sound ending at
    ``(t + 1) * hop_ms`` (zero before the onset), Hann-tapered; (2) power spectrum
    ``|FFT|^2 / sum(window^2)`` (zero-padded to ``n_fft``); (3) pooled into ``n_bands``
    triangular bands centred on ``geomspace(min_freq, max_freq, n_bands)``
    (`log_band_filterbank`, weighted mean power); (4) ``10 log10(power + 1e-12)``;
    (5) values below ``ref_db - threshold_db`` are set to that floor and the floor is
    subtracted, so the output is >= 0 and silence maps to exactly 0 (the floor never goes
    below -120 dB, see `apply_floor`).

    Args:
        wave: (n_samples,) 1-D waveform (numpy array or CPU tensor).
        sr: sample rate (Hz); ``max_freq`` must not exceed ``sr / 2``.
        n_bands: F. min_freq, max_freq: lowest/highest band centre (Hz).
        window_ms: Hann window length (ms). hop_ms: bin width (ms), the ``dt_ms`` of the
            result.
        threshold_db: dynamic range kept (dB, default 60); None returns the raw dB values
            (no floor, no shift) so that a caller can pick one ``ref_db`` for a whole
            stimulus set and call `apply_floor` itself.
        ref_db: reference level for the floor; None = the maximum of this clip.
        n_fft: FFT length; default: the next power of two >= the window length that also
            resolves the lowest band's half-width (zero padding).

    Returns:
        spec: (F, T) float32 with ``T = floor(n_samples * 1000 / (sr * hop_ms))`` (up to half
        a sample, `n_frames`). cf_hz: (F,) float64 band centre frequencies (Hz).

    Raises:
        ValueError: wave not 1-D, empty or not finite; bad sr; max_freq > sr / 2; a clip
            shorter than one bin.
    """
    if hasattr(wave, "detach"):
        wave = wave.detach().cpu().numpy()
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D waveform (n_samples,), got shape {x.shape}; "
                         "mix multi-channel audio down first (e.g. wave.mean(axis=1))")
    if x.size == 0:
        raise ValueError("expected a non-empty waveform, got 0 samples")
    if not np.all(np.isfinite(x)):
        raise ValueError("expected a finite waveform, found NaN or inf samples")
    if not (np.isscalar(sr) and np.isfinite(sr) and sr > 0):
        raise ValueError(f"expected a positive sample rate sr in Hz, got {sr!r}")
    sr = float(sr)
    if max_freq > sr / 2:
        raise ValueError(
            f"max_freq={max_freq:g} Hz is above the Nyquist frequency of the sample rate "
            f"sr={sr:g} Hz (sr / 2 = {sr / 2:g} Hz); use max_freq <= {0.95 * sr / 2:.0f} "
            f"(e.g. max_freq={0.95 * sr / 2:.0f}) or resample the sound")
    if not (window_ms > 0 and hop_ms > 0):
        raise ValueError(f"expected window_ms > 0 and hop_ms > 0, got {window_ms}, {hop_ms}")
    cf_hz = band_centre_frequencies(n_bands, min_freq, max_freq)

    win_len = int(round(sr * window_ms / 1000.0))
    if win_len < 2:
        raise ValueError(f"window_ms={window_ms} at sr={sr:g} Hz gives {win_len} sample(s); "
                         "expected at least 2")
    hop = sr * hop_ms / 1000.0
    T = n_frames(x.size, sr, hop_ms)
    if T < 1:
        raise ValueError(f"waveform of {x.size} samples ({1000 * x.size / sr:.2f} ms) is "
                         f"shorter than one {hop_ms} ms bin")
    if n_fft is None:
        # zero-pad so that the FFT bin spacing is below the half-width of the lowest band
        ratio = cf_hz[1] / cf_hz[0] if cf_hz.size > 1 else 2 ** (1 / 6)
        half_width = cf_hz[0] * (np.sqrt(ratio) - 1.0)
        need = max(win_len, int(np.ceil(sr / max(half_width, 1e-9))))
        n_fft = int(2 ** np.ceil(np.log2(need)))
        n_fft = min(n_fft, int(2 ** np.ceil(np.log2(win_len))) * 8)
    if n_fft < win_len:
        raise ValueError(f"expected n_fft >= window length ({win_len} samples), got {n_fft}")

    # causal frames: frame t = samples [end_t - win_len, end_t), end_t = round((t+1) * hop)
    ends = np.round((np.arange(T) + 1) * hop).astype(np.int64)
    ends = np.minimum(ends, x.size)
    padded = np.concatenate([np.zeros(win_len), x])
    idx = ends[:, None] + np.arange(win_len)[None, :]          # into `padded`
    window = np.hanning(win_len + 2)[1:-1]                     # no zero end points
    frames = padded[idx] * window                               # (T, win_len)
    spec = np.fft.rfft(frames, n=n_fft, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2) / np.sum(window ** 2)   # (T, n_fft/2+1)
    fb = log_band_filterbank(cf_hz, sr, n_fft)                 # (F, n_fft/2+1)
    band_power = fb @ power.T                                   # (F, T)
    spec_db = 10.0 * np.log10(band_power + EPS_POWER)
    if threshold_db is None:
        return spec_db.astype(np.float32), cf_hz
    return apply_floor(spec_db, threshold_db, ref_db), cf_hz


def default_max_freq(rates) -> float:
    """Highest band centre for sounds at sample rates ``rates`` (Hz): ``min(22627, 0.95 * min(rates) / 2)``."""
    return min(22627.0, 0.95 * min(float(r) for r in rates) / 2)


def cochleagram_set(sounds, names=None, n_bands: int = 34, min_freq: float = 500.0,
                    max_freq: Optional[float] = None, window_ms: float = 10.0, hop_ms: float = 5.0,
                    threshold_db: float = 60.0, where: str = "sounds", pad_bins: Tuple[int, int] = (0, 0)):
    """Cochleagrams of a stimulus set on one shared scale: the loaders' front end.

    Each sound goes through `cochleagram` (hop = ``hop_ms``) without a floor; the floor is
    then set ``threshold_db`` below the loudest bin of the *whole set* (`apply_floor`), so
    that every stimulus has the same dB scale and silence maps to 0.

    Args:
        sounds: list of ``(wave (n_samples,), sr)`` pairs.
        names: one name per sound for error messages (default ``sound 0``...).
        max_freq: highest band centre (Hz); None = `default_max_freq` of the sample rates
            (logged, naming ``where``).
        n_bands, min_freq, window_ms, threshold_db: as in `cochleagram`.
        pad_bins: ``(pre, post)`` bins of silence kept before / after each sound. Silence is the
            floor (0 after `apply_floor`); the sound is followed by zeros before the analysis,
            so the causal window lets its last samples into the first bins after its end, as a
            recording of the silence after a sound would. ``(0, 0)``: the sound's own bins.

    Returns:
        (spectrograms: list of ``(F, T_i)`` float32, cf_hz: (F,), info: dict with
        ``ref_db``, ``max_freq_hz`` and ``sample_rates_hz``).

    Raises:
        ValueError: naming the sound that `cochleagram` refused.
    """
    names = [f"sound {i}" for i in range(len(sounds))] if names is None else list(names)
    if not sounds:
        raise ValueError(f"{where}: expected at least one sound, got none")
    rates = [float(sr) for _, sr in sounds]
    if max_freq is None:
        max_freq = default_max_freq(rates)
        log.info("%s: max_freq=None -> %.0f Hz (min(22627, 0.95 * sr / 2), sr = %g Hz)",
                 where, max_freq, min(rates))
    pre, post = (int(v) for v in pad_bins)
    if pre < 0 or post < 0:
        raise ValueError(f"{where}: expected pad_bins (pre, post) >= 0, got {tuple(pad_bins)}")
    raw = []
    for (wave, sr), name in zip(sounds, names):
        n_stim = n_frames(np.asarray(wave).size, sr, hop_ms)
        tail = np.zeros(int(np.ceil(post * sr * hop_ms / 1000.0)) + 1 if post else 0)
        try:
            spec_db, cf_hz = cochleagram(np.concatenate([np.asarray(wave, dtype=np.float64), tail]), sr,
                                         n_bands=n_bands, min_freq=min_freq, max_freq=max_freq,
                                         window_ms=window_ms, hop_ms=hop_ms, threshold_db=None)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
        silence = np.full((spec_db.shape[0], pre), EPS_DB, dtype=spec_db.dtype)
        raw.append(np.concatenate([silence, spec_db[:, :n_stim + post]], axis=1))
    ref = max(float(s.max()) for s in raw)
    specs = [apply_floor(s, threshold_db, ref) for s in raw]
    return specs, cf_hz, {"ref_db": ref, "max_freq_hz": float(max_freq), "sample_rates_hz": rates}


def load_wav(path: Union[str, Path], sr: Optional[float] = None) -> Tuple[np.ndarray, float]:
    """Read a WAV file as a float64 mono waveform.

    Integer PCM is scaled to [-1, 1); multi-channel audio is averaged over channels.
    Works on files without a ``.wav`` extension (NS1 stimuli) since the RIFF header is read.

    Args:
        path: the file.
        sr: expected sample rate (Hz); when given, a file at another rate raises.

    Returns:
        wave: (n_samples,) float64. sr: the file's sample rate (Hz).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable / truncated / not a WAV file,
        empty, or a sample rate different from ``sr``.
    """
    from scipy.io import wavfile
    import warnings

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a WAV file at {path}, found nothing")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            file_sr, data = wavfile.read(path)
    except Exception as err:  # scipy raises ValueError / EOFError / struct errors
        raise ValueError(f"could not read {path} as a WAV file (truncated, corrupted or "
                         f"not RIFF/WAVE PCM): {err}") from err
    data = np.asarray(data)
    if data.dtype.kind == "u":          # 8-bit WAV is unsigned
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + 1) / 2) / ((info.max + 1) / 2)
    elif data.dtype.kind == "i":
        data = data.astype(np.float64) / float(-np.iinfo(data.dtype).min)
    else:
        data = data.astype(np.float64)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.size == 0:
        raise ValueError(f"WAV file {path} contains no samples")
    if sr is not None and abs(float(file_sr) - float(sr)) > 1e-6 * float(sr):
        raise ValueError(f"WAV file {path} has sample rate {file_sr} Hz, expected sr={sr:g} Hz")
    return data, float(file_sr)
