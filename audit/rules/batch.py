"""The rules of audit.rules.evaluate over many records at once, as array operations: what
`report rules` and the Coverage and safeguards page run over a period.

Why a second form: `evaluate.check` is the definition and what entry runs (one patient, a few
milliseconds), but calling it once per record costs minutes at a million records. Here every
rule is a mask over columns (numpy/pandas): per-record rules are comparisons; the history rules
sort the records by (patient, region, time) and find, with np.searchsorted on a combined key,
the earlier sessions within the window, the previous session of the same kind and the count of
qualifying blocks or steroids before. Message strings are built only for the exceptions.
tests/rules/test_batch_rules.py checks that the findings are exactly those of `evaluate.check`
(same rows, flags and messages) on hand-built histories, demo data and random histories.

Ties: when two earlier sessions share the latest time, the previous one is the one with the
smaller id (the report reads the history in id order, and `check` keeps the first maximum).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

import numpy as np
import pandas as pd

from audit.rules.evaluate import PARTICULATE, STEROIDS, _ordinal, _period
from audit.rules.packs import ESI_CODES, FACET_CODES, RULE_PACK
from audit.rules.store import ActivePack
from audit.vocab import ContrastConfirmation, Guidance, Region, level_order

COLUMNS = ["record_id", "performed_at", "procedure", "physician", "month", "rule", "pack",
           "exception", "message"]
#: The order `check` gives a record's findings in.
ORDER = {rule: n for n, rule in enumerate(RULE_PACK)}
_SPAN_PAD = 800  # more than the longest window (730 days), so a window never leaves its group


def _objects(series: pd.Series) -> np.ndarray:
    """A column as Python objects, missing values as None (what `check` sees): each distinct
    value converted once (a million arrow strings one by one cost seconds)."""
    codes, uniques = pd.factorize(series)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = list(uniques)
    table[-1] = None  # code -1: missing
    return table[codes]


def _in(values: np.ndarray, wanted: frozenset[str] | set[str]) -> np.ndarray:
    """Which of `values` (Python objects) are in `wanted`: a hash lookup (np.isin sorts)."""
    return pd.Series(values, dtype=object).isin(wanted).to_numpy(dtype=bool)


def _text(values: np.ndarray) -> pd.Series:
    """Strings (None: missing) as a string column, each distinct value converted once."""
    codes, uniques = pd.factorize(values)
    strings = pd.array(list(uniques), dtype="str")
    return pd.Series(pd.api.extensions.take(strings, codes, allow_fill=True))


def _is_true(series: pd.Series) -> np.ndarray:
    return np.array([v is True or v is np.True_ for v in _objects(series)], dtype=bool)


def _day_number(value: date) -> int:
    return int(np.datetime64(value, "D").astype(np.int64))


def _applies(pack: ActivePack | None, days: np.ndarray) -> np.ndarray:
    """ActivePack.applies over an array of day numbers."""
    if pack is None or not pack.enabled:
        return np.zeros(len(days), dtype=bool)
    on = np.ones(len(days), dtype=bool)
    if pack.effective_from is not None:
        on &= days >= _day_number(pack.effective_from)
    if pack.effective_to is not None:
        on &= days <= _day_number(pack.effective_to)
    return on


def _iso(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


class _Frame:
    """The history (every loaded record) and the checked records, as arrays."""

    def __init__(self, history: pd.DataFrame, relief: pd.DataFrame) -> None:
        history = history.sort_values("id", kind="stable").reset_index(drop=True)
        self.id = history["id"].to_numpy(dtype=np.int64)
        self.patient = history["patient_id"].to_numpy(dtype=np.int64)
        at = pd.to_datetime(history["performed_at"], utc=True, format="ISO8601")
        self.at = at.astype("datetime64[us, UTC]")
        naive = at.dt.tz_localize(None).to_numpy()
        self.day = naive.astype("datetime64[D]").astype(np.int64)
        self.rank = np.unique(naive, return_inverse=True)[1].astype(np.int64).ravel()
        self.code = _objects(history["code"])
        self.region = _objects(history["region"])
        self.injectate = _objects(history["injectate"])
        regions = pd.factorize(pd.Series(self.region, dtype=object), use_na_sentinel=False)[0]
        self.group = pd.factorize(self.patient * (int(regions.max(initial=0)) + 1)
                                  + regions)[0].astype(np.int64)
        self.base = int(self.day.min(initial=0)) - _SPAN_PAD
        self.span = int(self.day.max(initial=0)) - self.base + 1
        self.times = int(self.rank.max(initial=0)) + 2
        self.relief = relief
        self.frame = history

    def relieved(self, percent: int, days: int) -> np.ndarray:
        """Per record: a follow-up with >= percent relief for >= days."""
        r = self.relief
        ok = r["procedure_id"][(r["relief_percent"] >= percent) & (r["relief_days"] >= days)]
        return np.isin(self.id, ok.to_numpy(dtype=np.int64))

    def day_key(self, rows: np.ndarray | slice) -> np.ndarray:
        return self.group[rows] * self.span + (self.day[rows] - self.base)


def _sessions(h: _Frame, at: np.ndarray, kinds: frozenset[str], noun: str, limit: int,
              window: int) -> tuple[np.ndarray, list[str | None]]:
    """evaluate._sessions for the records at positions `at`: exception flags and messages."""
    of_kind = _in(h.code, kinds)
    keys = np.unique(h.day_key(of_kind))
    mine = h.day_key(at)
    high = np.searchsorted(keys, mine, "left")
    low = np.searchsorted(keys, mine - (window - 1), "left")
    count = high - low
    over = count + 1 > limit
    messages: list[str | None] = [None] * len(at)
    for i in np.flatnonzero(over):
        start = h.group[at[i]] * h.span - h.base  # key - start is the day number
        days = [_iso(k - start) for k in keys[low[i]:high[i]]]
        shown = ", ".join(days[:6]) + (", ..." if len(days) > 6 else "")
        messages[i] = (f"{_ordinal(len(days) + 1)} {noun} session in the {h.region[at[i]]} "
                       f"region within {_period(window)} (earlier: {shown}); the LCD covers "
                       f"{limit}")
    return over, messages


def _count_before(h: _Frame, qualifying: np.ndarray, at: np.ndarray,
                  group: np.ndarray) -> np.ndarray:
    """How many qualifying records of the same group are strictly earlier in time."""
    keys = np.sort(group[qualifying] * h.times + h.rank[qualifying])
    mine = group[at] * h.times + h.rank[at]
    return np.searchsorted(keys, mine, "left") - np.searchsorted(keys, group[at] * h.times,
                                                                   "left")


class _Out:
    """The findings being collected: positions in the history, rule, flag, message."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, str, np.ndarray, list[str | None]]] = []

    def add(self, at: np.ndarray, rule: str, flags: np.ndarray,
            messages: list[str | None] | np.ndarray) -> None:
        if len(at):
            self.parts.append((at, rule, np.asarray(flags, dtype=bool), list(messages)))


def _messages(flags: np.ndarray, make: Callable[[int], str]) -> list[str | None]:
    """The message of each exception (made only for those), None for the compliant."""
    return [make(i) if f else None for i, f in enumerate(flags)]


def _esi(h: _Frame, at: np.ndarray, levels: np.ndarray, p: Mapping[str, int],
         out: _Out) -> None:
    window = int(p["window_days"])
    over, text = _sessions(h, at, ESI_CODES, "ESI", int(p["max_sessions_per_region"]), window)
    out.add(at, "esi_sessions_per_region", over, text)
    code = h.code[at]
    most = np.array([int(p[f"max_levels_{c.lower()}"]) for c in code], dtype=np.int64)
    many = levels > most
    out.add(at, "esi_levels_per_session", many, _messages(
        many, lambda i: f"{code[i]} at {levels[i]} levels in one session; the LCD covers "
                        f"{most[i]}"))
    out.add(at, "esi_one_region_per_session", *_other_regions(h, at))
    is_esi = _in(h.code, ESI_CODES)
    order = np.flatnonzero(is_esi)
    order = order[np.lexsort((-h.id[order], h.rank[order], h.group[order]))]
    keys = h.day_key(order)
    mine = h.day_key(at)
    before = np.searchsorted(keys, mine, "left") - 1
    found = before >= 0
    found[found] = keys[before[found]] >= mine[found] - (window - 1)
    percent, days = int(p["repeat_relief_percent"]), int(p["repeat_relief_days"])
    relieved = h.relieved(percent, days)
    repeat, previous = at[found], order[before[found]]
    bad = ~relieved[previous]
    out.add(repeat, "esi_repeat_relief", bad, _messages(
        bad, lambda i: f"repeat {h.code[repeat[i]]} without documented relief from the "
                       f"previous one ({h.code[previous[i]]} on {_iso(h.day[previous[i]])}; "
                       f"needs >= {percent}% for >= {days} days)"))


def _other_regions(h: _Frame, at: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """esi_one_region_per_session: the other regions of earlier ESIs the same day."""
    is_esi = np.flatnonzero(_in(h.code, ESI_CODES))
    mine = pd.DataFrame({"pos": at, "patient": h.patient[at], "day": h.day[at]})
    other = pd.DataFrame({"other": is_esi, "patient": h.patient[is_esi], "day": h.day[is_esi]})
    pairs = mine.merge(other, on=["patient", "day"])
    pos, oth = pairs["pos"].to_numpy(), pairs["other"].to_numpy()
    keep = (h.rank[oth] < h.rank[pos]) & (h.id[oth] != h.id[pos]) \
        & (h.region[oth] != h.region[pos])
    regions: dict[int, set[str]] = {}
    for a, b in zip(pos[keep], oth[keep], strict=True):
        regions.setdefault(int(a), set()).add(h.region[b])
    flags = np.array([int(a) in regions for a in at], dtype=bool)
    return flags, _messages(flags, lambda i: (
        f"ESI in the {h.region[at[i]]} and {', '.join(sorted(regions[int(at[i])]))} regions "
        "in one session; the LCD covers one region per session"))


def _facet(h: _Frame, at: np.ndarray, levels: np.ndarray, p: Mapping[str, int],
           out: _Out) -> None:
    window, most = int(p["window_days"]), int(p["max_levels"])
    code = h.code[at]
    many = levels > most
    out.add(at, "facet_levels_per_session", many, _messages(
        many, lambda i: f"{code[i]} at {levels[i]} levels in one session; the LCD covers "
                        f"{most}"))
    rfa = at[code == "RFA"]
    wanted, percent = int(p["blocks_before_rfa"]), int(p["block_relief_percent"])
    blocks = (h.code == "MBB") & h.relieved(percent, 0)
    found = _count_before(h, blocks, rfa, h.group)
    few = found < wanted
    out.add(rfa, "rfa_diagnostic_blocks", few, _messages(
        few, lambda i: f"RFA without {'two' if wanted == 2 else wanted} diagnostic blocks "
                       f"with >= {percent}% relief in the {h.region[rfa[i]]} region (found: "
                       f"{found[i]})"))
    out.add(rfa, "rfa_sessions_per_region", *_sessions(
        h, rfa, frozenset({"RFA"}), "RFA", int(p["max_rfa_sessions_per_region"]), window))
    facet = at[code == "FACET"]
    out.add(facet, "facet_sessions_per_region", *_sessions(
        h, facet, frozenset({"FACET"}), "therapeutic facet injection",
        int(p["max_facet_sessions_per_region"]), window))


def _safeguards(h: _Frame, at: np.ndarray, levels: pd.DataFrame, p: Mapping[str, str],
                out: _Out) -> None:
    f = h.frame
    code, region, injectate = h.code[at], h.region[at], h.injectate[at]
    confirmation = _objects(f["contrast_confirmation"])[at]
    # the views as evaluate reads them, worked out once per distinct stored text
    codes, texts = pd.factorize(_objects(f["confirmation_views"])[at], use_na_sentinel=False)
    views = [frozenset((v if isinstance(v, str) else "").split(";")) - {""} for v in texts]
    has_ap = np.array(["AP" in v for v in views], dtype=bool)[codes]
    side = np.array([bool(v & {"LAT", "CLO"}) for v in views], dtype=bool)[codes]
    excepted = confirmation == ContrastConfirmation.CONTRAINDICATED.value
    tfesi, ilesi = code == "TFESI", code == "ILESI"
    done = (confirmation == ContrastConfirmation.CONFIRMED.value) \
        & _is_true(f["realtime_contrast"])[at] & has_ap
    chosen = tfesi & ~excepted
    out.add(at[chosen], "tfesi_realtime_contrast", ~done[chosen], _messages(
        ~done[chosen], lambda i: "TFESI without contrast under real-time fluoroscopy or DSA "
                                 "in the AP view before the injectate"))
    steroid = _in(injectate, STEROIDS)
    particulate = _in(injectate, PARTICULATE)
    lumbar = tfesi & (region == Region.LUMBAR.value) & steroid
    all_steroid = _in(h.injectate, STEROIDS)
    earlier = (h.code == "TFESI") & (h.region == Region.LUMBAR.value) & all_steroid
    first = at[lumbar][_count_before(h, earlier, at[lumbar], h.patient) == 0]
    out.add(first, "lumbar_tfesi_first_steroid", _in(h.injectate[first], PARTICULATE),
            [f"particulate steroid ({h.injectate[i]}) in the patient's first lumbar TFESI; "
             "dexamethasone is first-line" if h.injectate[i] in PARTICULATE else None
             for i in first])
    cervical = tfesi & (region == Region.CERVICAL.value) & steroid
    out.add(at[cervical], "cervical_tfesi_no_particulate", particulate[cervical],
            [f"particulate steroid ({injectate[i]}) in a cervical TFESI" if particulate[i]
             else None for i in np.flatnonzero(cervical)])
    highest = str(p["cervical_ilesi_highest_level"])
    neck = np.flatnonzero(ilesi & (region == Region.CERVICAL.value))
    listed = levels[levels["procedure_id"].isin(h.id[at[neck]])]
    above: dict[int, list[str]] = {}
    top = level_order(highest)
    for pid, level in zip(listed["procedure_id"], listed["level"], strict=True):
        above.setdefault(int(pid), [])
        if level_order(level) < top:
            above[int(pid)].append(level)
    neck = neck[[int(h.id[at[i]]) in above for i in neck]]
    messages = [f"cervical ILESI at {', '.join(above[int(h.id[at[i]])])}: above {highest} "
                "(C7-T1 is preferred)" if above[int(h.id[at[i]])] else None for i in neck]
    out.add(at[neck], "cervical_ilesi_level", [m is not None for m in messages], messages)
    guided = _objects(f["guidance"])[at] != Guidance.ULTRASOUND.value
    chosen = ilesi & ~excepted & guided
    no_views = ~(has_ap & side)
    no_dose = ~_is_true(f["contrast_test_dose"])[at]
    missing = [[t for t, m in (("AP plus lateral or contralateral-oblique views", no_views[i]),
                               ("a contrast test dose", no_dose[i])) if m]
               for i in np.flatnonzero(chosen)]
    out.add(at[chosen], "ilesi_views_test_dose", [bool(m) for m in missing],
            [f"ILESI without {' and without '.join(m)}" if m else None for m in missing])


def evaluate_many(history: pd.DataFrame, relief: pd.DataFrame, levels: pd.DataFrame,
                  wanted: np.ndarray, packs: Mapping[str, ActivePack]) -> pd.DataFrame:
    """The findings of `evaluate.check` for every record whose id is in `wanted`, against the
    `history` (one row per final record: id, patient_id, performed_at, code, region,
    injectate, guidance, contrast_confirmation, realtime_contrast, confirmation_views,
    contrast_test_dose, physician), with `relief` (procedure_id, relief_percent, relief_days)
    and the checked records' `levels` (procedure_id, level, in position order). One row per
    (record, rule that applies), ordered by record id then as `check` gives them."""
    if history.empty or not len(wanted):
        return pd.DataFrame({c: [] for c in COLUMNS})
    h = _Frame(history, relief)
    at = np.flatnonzero(np.isin(h.id, np.asarray(wanted, dtype=np.int64)))
    counts = levels.groupby("procedure_id").size()
    level_count = counts.reindex(h.id[at], fill_value=0).to_numpy(dtype=np.int64)
    out = _Out()
    code, day = h.code[at], h.day[at]
    esi = _applies(packs.get("lcd_esi"), day) & _in(code, ESI_CODES)
    if esi.any():
        _esi(h, at[esi], level_count[esi], packs["lcd_esi"].parameters, out)
    facet = _applies(packs.get("lcd_facet"), day) & _in(code, FACET_CODES)
    if facet.any():
        _facet(h, at[facet], level_count[facet], packs["lcd_facet"].parameters, out)
    safe = _applies(packs.get("safeguards_2015"), day)
    if safe.any():
        _safeguards(h, at[safe], levels, packs["safeguards_2015"].parameters, out)
    if not out.parts:
        return pd.DataFrame({c: [] for c in COLUMNS})
    pos = np.concatenate([a for a, *_ in out.parts])
    rules = np.concatenate([np.full(len(a), r, dtype=object) for a, r, *_ in out.parts])
    rank = np.concatenate([np.full(len(a), ORDER[r]) for a, r, *_ in out.parts])
    flags = np.concatenate([f for *_, f, _ in out.parts])
    messages = np.empty(len(pos), dtype=object)
    messages[:] = [m for *_, ms in out.parts for m in ms]
    order = np.lexsort((rank, h.id[pos]))
    pos, rules, flags, messages = pos[order], rules[order], flags[order], messages[order]
    at_time = h.at.iloc[pos].reset_index(drop=True)
    days, inverse = np.unique(h.day[pos], return_inverse=True)
    months = np.array([_iso(d)[:7] for d in days], dtype=object)[inverse.ravel()]
    return pd.DataFrame({
        "record_id": h.id[pos], "performed_at": at_time, "procedure": _text(h.code[pos]),
        "physician": _text(_objects(h.frame["physician"])[pos]), "month": _text(months),
        "rule": _text(rules), "pack": _text(np.array([RULE_PACK[r] for r in rules])),
        "exception": flags,
        "message": _text(messages) if flags.any() else messages})  # all None: object, as before
