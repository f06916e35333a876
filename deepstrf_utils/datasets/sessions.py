"""Several recording sessions that share the stimulus format: :class:`SessionSet`.

Each session is a :class:`~deepstrf_utils.datasets.base.ResponseDataset` with its own
neurons, stimuli and repeats; all share the number of bands F, the band centre frequencies
(movies: the frame shape (C, H, W)) and the bin width ``dt_ms`` (a shared core sees the same
kind of input from every session),
and, where they carry state signals, the same state names. Splits stay per session
(:meth:`SessionSet.split` splits every session by its own rule).

Shapes: F bands, T bins, N neurons per session, S state signals.
"""
from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .base import ResponseDataset

__all__ = ["SessionSet"]


class SessionSet:
    """Named recording sessions sharing F, ``cf_hz`` and ``dt_ms``.

    Args:
        sessions: ``{session id: ResponseDataset}``, or a list of datasets (ids from their
            names, made unique with a suffix ``_1``, ``_2``... where names repeat).

    Raises ValueError naming the expected F / dt_ms / state names when a session differs
    from the first one, or a session id that is empty or contains '.'.
    """

    def __init__(self, sessions: Mapping[str, ResponseDataset] | Sequence[ResponseDataset]):
        if isinstance(sessions, Mapping):
            items = [(str(k), v) for k, v in sessions.items()]
        else:
            items, seen = [], {}
            for ds in sessions:
                base = str(getattr(ds, "name", "session"))
                seen[base] = seen.get(base, -1) + 1
                items.append((base if seen[base] == 0 else f"{base}_{seen[base]}", ds))
        if not items:
            raise ValueError("expected at least one session (a ResponseDataset), got none")
        first_key, first = items[0]
        for key, ds in items:
            if not isinstance(ds, ResponseDataset):
                raise ValueError(f"expected session {key!r} as a ResponseDataset, got {type(ds).__name__}")
            if not key or "." in key:
                raise ValueError(f"expected session ids as non-empty names without '.', got {key!r}")
            frames = getattr(ds, "frame_shape", None)
            if frames is not None or getattr(first, "frame_shape", None) is not None:  # movies (MovieDataset)
                if frames != getattr(first, "frame_shape", None):
                    raise ValueError(f"expected session {key!r} with movie frames (C, H, W)="
                                     f"{getattr(first, 'frame_shape', None)} like session {first_key!r}, got {frames}")
            elif ds.n_bands != first.n_bands or not np.allclose(ds.cf_hz, first.cf_hz, rtol=1e-6):
                raise ValueError(f"expected session {key!r} with F={first.n_bands} bands at the centre frequencies of "
                                 f"session {first_key!r}, got F={ds.n_bands}")
            if not np.isclose(ds.dt_ms, first.dt_ms):
                raise ValueError(f"expected session {key!r} with dt_ms={first.dt_ms:g} like session {first_key!r}, "
                                 f"got dt_ms={ds.dt_ms:g}")
            if (ds.states is None) != (first.states is None) or ds.state_names != first.state_names:
                raise ValueError(f"expected session {key!r} with the state signals of session {first_key!r} "
                                 f"({first.state_names or 'none'}), got {ds.state_names or 'none'}")
        self._sessions = dict(items)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[str]:
        return iter(self._sessions)

    def __getitem__(self, session: str) -> ResponseDataset:
        key = str(session)
        if key not in self._sessions:
            raise ValueError(f"unknown session {session!r}; expected one of {self.ids}")
        return self._sessions[key]

    def items(self):
        return self._sessions.items()

    @property
    def ids(self) -> list[str]:
        """Session ids, in order."""
        return list(self._sessions)

    @property
    def n_neurons(self) -> dict[str, int]:
        """``{session id: N}`` (the ``sessions`` argument of a MultiSessionModel)."""
        return {k: ds.n_neurons for k, ds in self._sessions.items()}

    @property
    def n_bands(self) -> int:
        return next(iter(self._sessions.values())).n_bands

    @property
    def dt_ms(self) -> float:
        return next(iter(self._sessions.values())).dt_ms

    @property
    def state_names(self) -> list[str]:
        return next(iter(self._sessions.values())).state_names

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: N={ds.n_neurons} B={ds.n_stimuli}" for k, ds in self._sessions.items())
        first = next(iter(self._sessions.values()))
        fmt = f"frames={first.frame_shape}" if getattr(first, "frame_shape", None) else f"F={self.n_bands}"
        return f"SessionSet({inner}; {fmt}, dt_ms={self.dt_ms:g})"

    # ------------------------------------------------------------------ splits and summaries
    def split(self, seed: int = 0) -> tuple["SessionSet", "SessionSet", "SessionSet"]:
        """Per-session (train, val, test) splits for ``seed``, each session by its own rule."""
        parts = {k: ds.split(seed) for k, ds in self._sessions.items()}
        return tuple(SessionSet({k: p[j] for k, p in parts.items()}) for j in range(3))

    def summary(self) -> pd.DataFrame:
        """One row per session: the dataset summary with a ``session`` column first."""
        rows = [ds.summary().assign(session=k) for k, ds in self._sessions.items()]
        table = pd.concat(rows, ignore_index=True)
        return table[["session"] + [c for c in table.columns if c != "session"]]
