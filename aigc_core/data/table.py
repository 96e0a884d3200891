"""Tables: CSV import with type detection, two built-in tables, the upload codec
and the per-column statistics the Data page shows.

Importing a CSV (:func:`import_csv`) goes through these stages, each reported
back to the user in a :class:`CsvReport`:

1. **encoding** - UTF-8 (with or without a byte-order mark, or UTF-16 with one);
   otherwise Windows-1252, then Latin-1, and the report says so;
2. **delimiter** - ``csv.Sniffer`` among ``, ; tab |``, checked against how
   consistently each candidate splits the lines;
3. **header** - is the first row names or data? (a name above a column of
   numbers, or names that never reappear in their column);
4. **rows** - blank lines are skipped, trailing empty fields trimmed, short
   rows padded with missing cells; rows with extra non-empty fields are dropped
   (or, when there are many, the import stops and names the lines);
5. **types** - each column is ``numeric``, ``categorical`` or ``boolean``
   (:func:`infer_types`), integers are remembered as integers; cells that do
   not fit their column's type become missing and are counted;
6. **missing values** - ``drop`` the row or ``fill`` the cell (median for
   numbers, most frequent value otherwise).

The page shows the inferred types in an editable table; calling
:func:`import_csv` again with ``column_types=`` (or :func:`apply_types` on a
frame) applies the user's corrections. A type of ``"ignore"`` leaves a column
out.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from .base import TableData
from .catalog import builtin, check_name, upload_codec

TYPES = ("numeric", "categorical", "boolean")
DELIMITERS = [",", ";", "\t", "|"]
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
MIN_ROWS = 20
#: the largest CSV we read (a million cells of numbers are ~10 MB of text).
MAX_BYTES = 20 * 1024 * 1024
#: the most columns a table may have (the models and the Data page's charts
#: are built for tens; every column is a generator output and a chart).
MAX_COLUMNS = 100
#: the most cells (rows x columns) read from a CSV: importing holds every cell
#: as a Python string (a 1 MB file peaks at ~40 times its size) and checks it
#: in pandas, so this bounds one import to ~100 MB and ~5-15 s; 50,000 rows x
#: 20 columns fit.
MAX_CELLS = 1_000_000
#: associations (every pair, ~1 ms a pair) are computed for at most this many
#: columns: the first ones, with the label column always among them.
HEAT_MAP_COLUMNS = 20
MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "?", "#n/a", "missing"}
BOOLEAN_PAIRS = [{"true", "false"}, {"yes", "no"}, {"y", "n"}, {"t", "f"}, {"1", "0"}, {"1.0", "0.0"}]
TRUE_TOKENS = {"true", "yes", "y", "t", "1", "1.0"}
FALSE_TOKENS = {"false", "no", "n", "f", "0", "0.0"}
# Share of a column's cells that must read as numbers for it to count as numeric
# (the rest are reported as coerced to missing).
NUMERIC_SHARE = 0.9
# A numeric label with at most this many distinct whole values is a class label.
LABEL_MAX_CLASSES = 20
#: words in a column name that say "this is what to predict" (``Outcome``,
#: ``target``, ``class_label``, ``y``); matched against the name's words
LABEL_WORDS = ("target", "label", "class", "y", "outcome")
#: a guessed label's classes must each have about this many rows on average,
#: or the column is more like an identifier than a class
ROWS_PER_CLASS = 5
MAX_EXAMPLES = 10

_BINARY_SIGNATURES = [
    (b"PK\x03\x04", "a zip archive or an Excel .xlsx workbook"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3", "an SQLite database"),
    (b"PAR1", "a Parquet file"),
]


@dataclass
class LabelGuess:
    """The column guessed to be the label (None: no column looks like one), and why, in words."""

    column: str | None
    reason: str


@dataclass
class CsvReport:
    """What :func:`import_csv` found and did, for the page to show.

    Line numbers are the file's own (1 = first line, header included), so a
    user can find them in a text editor.
    """

    data: TableData
    delimiter: str
    encoding: str
    encoding_note: str
    has_header: bool
    column_types: dict[str, str]
    integer_columns: list[str]
    rows_read: int
    rows_kept: int
    missing_policy: str
    dropped_rows: int = 0
    dropped_examples: list[tuple[int, str]] = field(default_factory=list)
    coerced_cells: int = 0
    coerced_examples: list[tuple[int, str, str]] = field(default_factory=list)
    filled_cells: int = 0
    repaired_rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the label column the file suggests (whether or not it was used)
    label_guess: LabelGuess = field(default_factory=lambda: LabelGuess(None, "not guessed"))

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))

    def messages(self) -> list[str]:
        """The report as plain sentences, most important first."""
        out = [
            f"Read {self.rows_read} data rows and {len(self.column_types)} columns "
            f"({self.delimiter_name}-separated, {self.encoding}, "
            f"{'first line is the header' if self.has_header else 'no header line; columns were numbered'})."
        ]
        if self.encoding_note:
            out.append(self.encoding_note)
        if self.repaired_rows:
            out.append(f"{self.repaired_rows} row(s) had empty trailing fields or too few fields and were repaired "
                       "(missing fields count as missing values).")
        if self.coerced_cells:
            ex = "; ".join(f"line {ln}, {col!r}: {val!r}" for ln, col, val in self.coerced_examples[:3])
            out.append(f"{self.coerced_cells} cell(s) did not fit their column's type and became missing (e.g. {ex}).")
        if self.dropped_rows:
            ex = "; ".join(f"line {ln}: {why}" for ln, why in self.dropped_examples[:3])
            out.append(f"{self.dropped_rows} row(s) were dropped (e.g. {ex}). {self.rows_kept} rows remain.")
        if self.filled_cells:
            out.append(f"{self.filled_cells} missing cell(s) were filled (median for numbers, most frequent value otherwise).")
        if self.ignored_columns:
            out.append(f"Left out: {', '.join(self.ignored_columns)}.")
        out += self.warnings
        return out

    def to_dict(self) -> dict:
        """JSON-able summary (without the table itself)."""
        return dict(
            name=self.data.name, delimiter=self.delimiter, encoding=self.encoding,
            encoding_note=self.encoding_note, has_header=self.has_header,
            column_types=dict(self.column_types), integer_columns=list(self.integer_columns),
            label_column=self.data.label_column, label_guess=self.label_guess.column,
            label_reason=self.label_guess.reason, rows_read=self.rows_read, rows_kept=self.rows_kept,
            missing_policy=self.missing_policy, dropped_rows=self.dropped_rows,
            dropped_examples=[list(x) for x in self.dropped_examples], coerced_cells=self.coerced_cells,
            coerced_examples=[list(x) for x in self.coerced_examples], filled_cells=self.filled_cells,
            repaired_rows=self.repaired_rows, ignored_columns=list(self.ignored_columns),
            warnings=list(self.warnings),
        )


# ---- stage 1: bytes to text -------------------------------------------------------

def _decode(source: bytes, filename: str | None) -> tuple[str, str, str]:
    """(text, encoding name, note for the user)."""
    shown = f"{filename!r}" if filename else "the file"
    if not isinstance(source, (bytes, bytearray)):
        raise UserError("a CSV upload must be given as bytes")
    if len(source) > MAX_BYTES:
        raise UserError(f"{shown} is {len(source) / 2**20:.0f} MB; tables up to {MAX_BYTES // 2**20} MB can be imported")
    if filename and filename.lower().endswith((".pkl", ".pickle", ".pt", ".pth", ".npy", ".npz", ".joblib")):
        raise UserError(f"{shown} is a Python/NumPy binary file; for safety these are never opened. Upload a CSV text file")
    if not source.strip():
        raise UserError(f"{shown} is empty; upload a CSV file with a header line and data rows")
    for magic, what in _BINARY_SIGNATURES:
        if source.startswith(magic):
            raise UserError(f"{shown} is {what}, not a CSV text file. Export or save it as CSV (comma-separated values) and upload that")
    if source.startswith(b"\xef\xbb\xbf"):
        return _check_text(source[3:].decode("utf-8", errors="replace"), shown), "utf-8-sig", ""
    if source.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _check_text(source.decode("utf-16"), shown), "utf-16", ""
        except UnicodeDecodeError as exc:
            raise UserError(f"{shown} starts like UTF-16 text but does not decode as UTF-16 (bytes {exc.start + 1} to "
                            f"{exc.end} are not valid UTF-16); save it as UTF-8 CSV") from None
    zero = source.find(b"\x00", 0, 65536)
    if zero >= 0:
        line = source[:zero].count(b"\n") + 1
        raise UserError(f"{shown} contains binary data (a zero byte at byte {zero + 1}, line {line}), "
                        "so it is not a CSV text file. "
                        "Save it as CSV (comma-separated values) and upload that")
    try:
        return _check_text(source.decode("utf-8"), shown), "utf-8", ""
    except UnicodeDecodeError as exc:
        line = source[:exc.start].count(b"\n") + 1
    for enc, label in (("cp1252", "Windows-1252 (Western European)"), ("latin-1", "Latin-1 (ISO-8859-1)")):
        try:
            text = source.decode(enc)
        except UnicodeDecodeError:
            continue
        note = (f"The file is not UTF-8 (first non-UTF-8 byte on line {line}); it was read as {label}. "
                "Check accented letters in the preview; if they look wrong, save the file as UTF-8 and upload it again.")
        return _check_text(text, shown), enc, note
    raise AssertionError("latin-1 decodes any bytes")


def _check_text(text: str, shown: str) -> str:
    sample = text[:65536]
    control = [i for i, ch in enumerate(sample) if ord(ch) < 32 and ch not in "\t\r\n"]
    if len(control) > max(2, 0.01 * len(sample)):
        line = sample[:control[0]].count("\n") + 1
        raise UserError(f"{shown} contains binary data ({len(control)} control characters, the first on line {line}), "
                        "so it is not a CSV text file. Save it as CSV (comma-separated values) and upload that")
    return text


# ---- stage 2: delimiter -----------------------------------------------------------

def _split_counts(lines: list[str], delimiter: str) -> tuple[int, float]:
    """(most common number of fields, share of lines with that number)."""
    try:
        counts = [len(r) for r in csv.reader(lines, delimiter=delimiter) if r]
    except csv.Error:
        return 1, 0.0
    if not counts:
        return 1, 0.0
    values, freq = np.unique(counts, return_counts=True)
    best = int(np.argmax(freq))
    return int(values[best]), float(freq[best] / len(counts))


def _detect_delimiter(text: str) -> str:
    sample = text[:65536]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rfind("\n")]
    lines = [ln for ln in sample.splitlines() if ln.strip()][:200]
    try:
        sniffed = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    scores = {d: _split_counts(lines, d) for d in DELIMITERS}
    if sniffed in scores and scores[sniffed][0] > 1 and scores[sniffed][1] >= 0.9:
        # ... unless another candidate splits as consistently into more fields
        # ("1;2,5;a": semicolons with decimal commas split by commas too)
        wider = [d for d, (ncol, share) in scores.items() if share >= scores[sniffed][1] and ncol > scores[sniffed][0]]
        return wider[0] if wider else sniffed
    # The sniffer can be fooled (decimal commas, quoted text): take the candidate
    # that splits the most lines into the same number (>1) of fields.
    usable = [(share, ncol, d == sniffed, d) for d, (ncol, share) in scores.items() if ncol > 1]
    if not usable:
        return sniffed or ","
    return max(usable)[3]


# ---- stage 3-4: rows and header ---------------------------------------------------

def _read_rows(text: str, delimiter: str, shown: str) -> tuple[list[list[str]], list[int]]:
    """Every non-blank row (cells stripped) and the file line it ends on."""
    rows, lines = [], []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    cells = 0
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if not rows and len(row) > MAX_COLUMNS and sum(1 for c in row if c.strip()) > MAX_COLUMNS:
                raise UserError(f"{shown} has {len(row):,} columns; the limit is {MAX_COLUMNS}. Save a copy with only "
                                "the columns you want to generate (leave out identifiers and free text) and upload that")
            cells += len(row)
            if cells > MAX_CELLS:
                raise UserError(f"{shown} holds more than {MAX_CELLS:,} cells (stopped at line {reader.line_num:,}, "
                                f"after {len(rows):,} rows); the limit keeps one import's memory bounded. Upload a "
                                "sample of the rows (the first 20,000, say)")
            rows.append([c.strip() for c in row])
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise UserError(f"{shown} could not be read as CSV at line {reader.line_num}: {exc}. "
                        "Check for an unclosed quote (\") around that line") from None
    return rows, lines


def _is_number(cell: str, decimal_comma: bool = False) -> bool:
    return not math.isnan(_parse_number(cell, decimal_comma))


_DECIMAL_COMMA = re.compile(r"^[-+]?\d*,\d+$")


def _parse_number(cell: str, decimal_comma: bool = False) -> float:
    text = cell.strip()
    if decimal_comma and _DECIMAL_COMMA.match(text):
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _detect_header(rows: list[list[str]], decimal_comma: bool) -> bool:
    """Is the first row column names? Names are never numbers; a name sits above
    a column of numbers, or (for all-text tables) never reappears below it."""
    first, body = rows[0], rows[1:201]
    cells = [c for c in first if c]
    if not cells or any(_is_number(c, decimal_comma) for c in cells):
        return False
    for j, name in enumerate(first):
        column = [r[j] for r in body if j < len(r) and r[j].lower() not in MISSING_TOKENS]
        if name and column and sum(_is_number(c, decimal_comma) for c in column) >= NUMERIC_SHARE * len(column):
            return True
    if len(set(cells)) < len(cells):
        return False
    reappear = sum(1 for j, name in enumerate(first) if name and any(j < len(r) and r[j] == name for r in body))
    return reappear == 0


def _column_names(first: list[str] | None, ncol: int) -> list[str]:
    names, seen = [], set()
    for j in range(ncol):
        base = (first[j] if first is not None and j < len(first) else "") or f"column_{j + 1}"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


# ---- stage 5: types ----------------------------------------------------------------

def _is_missing(series: pd.Series) -> pd.Series:
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        low = series.astype(str).str.strip().str.lower()
        return series.isna() | low.isin(MISSING_TOKENS)
    return series.isna()


def _numbers(series: pd.Series, decimal_comma: bool = False) -> pd.Series:
    """Numbers from a column of any dtype; cells that are not numbers are NaN."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(float)
    if pd.api.types.is_numeric_dtype(series.dtype):
        out = pd.to_numeric(series, errors="coerce").astype(float)
        return out.where(np.isfinite(out))
    text = series.astype(str).str.strip()
    if decimal_comma:
        text = text.where(~text.str.match(_DECIMAL_COMMA.pattern), text.str.replace(",", ".", regex=False))
    out = pd.to_numeric(text, errors="coerce").astype(float)
    out = out.where(np.isfinite(out))
    return out.where(~_is_missing(series))


def _tokens(series: pd.Series) -> pd.Series:
    """Lower-case text of each present cell (1.0 -> '1.0', True -> 'true')."""
    present = series[~_is_missing(series)]
    if pd.api.types.is_bool_dtype(present.dtype):
        return present.map(lambda v: "true" if v else "false")
    return present.astype(str).str.strip().str.lower()


def _infer_one(series: pd.Series, decimal_comma: bool = False) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    present = series[~_is_missing(series)]
    if len(present) == 0:
        return "categorical"
    tokens = set(_tokens(series).unique())
    if len(tokens) <= 2 and any(tokens <= pair for pair in BOOLEAN_PAIRS):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numeric"
    numbers = _numbers(present, decimal_comma)
    if numbers.notna().mean() >= NUMERIC_SHARE:
        return "numeric"
    return "categorical"


def infer_types(frame: pd.DataFrame, decimal_comma: bool = False) -> dict[str, str]:
    """The type of each column: ``numeric`` (at least 90% of the cells are
    numbers), ``boolean`` (two values such as yes/no, true/false, 1/0) or
    ``categorical`` (anything else). Works on raw text and on typed frames."""
    return {str(col): _infer_one(frame[col], decimal_comma) for col in frame.columns}


def _whole(values: pd.Series) -> bool:
    present = values.dropna()
    return bool(len(present)) and bool(np.all(np.mod(present.to_numpy(), 1.0) == 0)) and bool((present.abs() < 2**53).all())


def _category_text(series: pd.Series) -> pd.Series:
    """Categories as text; whole floats (1.0) read as "1"."""
    if pd.api.types.is_float_dtype(series.dtype) and _whole(series):
        return series.map(lambda v: str(int(v)) if pd.notna(v) else np.nan).astype(object)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.map(lambda v: "True" if v else "False").astype(object)
    return series.astype(object).map(lambda v: str(v).strip() if pd.notna(v) else np.nan)


def _apply_types(frame: pd.DataFrame, types: dict[str, str], decimal_comma: bool = False,
                 integer_columns: list[str] | None = None):
    """Typed frame, the ignored columns and every cell that became missing, as
    (row index, column, original text)."""
    unknown_cols = [c for c in types if c not in frame.columns]
    if unknown_cols:
        raise UserError(f"no column called {', '.join(map(repr, unknown_cols))}; the columns are {', '.join(map(str, frame.columns))}")
    bad = {c: t for c, t in types.items() if t not in TYPES + ("ignore",)}
    if bad:
        col, t = next(iter(bad.items()))
        raise UserError(f"type {t!r} for column {col!r} is not one of numeric, categorical, boolean, ignore")
    inferred = infer_types(frame.drop(columns=list(types)), decimal_comma) if set(types) != set(frame.columns) else {}
    out, coerced, ignored = {}, [], []
    for col in frame.columns:
        kind = types.get(col) or inferred[str(col)]
        series = frame[col]
        if kind == "ignore":
            ignored.append(str(col))
            continue
        was_missing = _is_missing(series)
        if kind == "numeric":
            values = _numbers(series, decimal_comma)
            whole = _whole(values) if integer_columns is None else col in integer_columns
            if whole:
                values = values.round()
                values = values.astype("int64") if values.notna().all() else values.astype("Int64")
        elif kind == "boolean":
            tokens = series.map(lambda v: ("true" if v else "false") if isinstance(v, (bool, np.bool_))
                                else (str(v).strip().lower() if pd.notna(v) else ""))
            values = pd.Series(np.where(tokens.isin(TRUE_TOKENS), True, np.where(tokens.isin(FALSE_TOKENS), False, None)),
                               index=series.index, dtype=object)
            values = values.astype(bool) if values.notna().all() else values.astype("boolean")
        else:
            values = _category_text(series).where(~was_missing, np.nan)
        became = values.isna() & ~was_missing
        coerced += [(idx, str(col), str(series[idx])) for idx in became[became].index]
        out[str(col)] = values
    typed = pd.DataFrame(out, index=frame.index)
    return typed, ignored, coerced


def apply_types(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """``frame`` with each column converted to its type (the page's corrections).

    Numbers that are all whole become integers; cells that do not fit the type
    become missing; a column typed ``ignore`` is left out; columns not named in
    ``types`` keep their inferred type.
    """
    typed, _, _ = _apply_types(frame, dict(types))
    return typed


def column_types_of(frame: pd.DataFrame) -> dict[str, str]:
    """Types of an already typed frame (bool -> boolean, numbers -> numeric)."""
    out = {}
    for col in frame.columns:
        dtype = frame[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            out[str(col)] = "boolean"
        elif pd.api.types.is_numeric_dtype(dtype):
            out[str(col)] = "numeric"
        else:
            out[str(col)] = "categorical"
    return out


def integer_columns_of(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns
            if pd.api.types.is_integer_dtype(frame[c].dtype) and not pd.api.types.is_bool_dtype(frame[c].dtype)]


# ---- the label column ----------------------------------------------------------------

def _name_words(name: str) -> list[str]:
    """``"Class Label"``, ``class_label``, ``classLabel`` -> ``["class", "label"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def _classes_in(series: pd.Series, kind: str, decimal_comma: bool = False) -> int | None:
    """How many classes the column would make as a label, or None when it cannot be one
    (numbers with fractions or more than :data:`LABEL_MAX_CLASSES` values)."""
    present = series[~_is_missing(series)]
    if kind == "numeric":
        numbers = _numbers(present, decimal_comma).dropna()
        if not _whole(numbers) or numbers.nunique() > LABEL_MAX_CLASSES:
            return None
        return int(numbers.nunique())
    return int(_tokens(present).nunique()) if kind == "boolean" else int(present.astype(str).str.strip().nunique())


def guess_label_column(frame: pd.DataFrame, column_types: dict[str, str], decimal_comma: bool = False) -> LabelGuess:
    """The column a table's rows are most likely classified by.

    1. a column named like what is predicted (a word of its name is one of
       :data:`LABEL_WORDS`: ``target``, ``label``, ``class``, ``y``,
       ``outcome``) that can be a class: categories, yes/no, or whole numbers
       with at most :data:`LABEL_MAX_CLASSES` values;
    2. else the last column with few values: 2 to :data:`LABEL_MAX_CLASSES`
       classes and at least :data:`ROWS_PER_CLASS` rows per class (the label is
       usually the last column, and a column with few values is a class);
    3. else none.

    Columns typed ``ignore`` are never guessed. Works on raw text (the
    import's) and on typed frames.
    """
    rows = max(1, len(frame))
    usable = {c: k for c, k in column_types.items() if k in TYPES and c in frame.columns}
    classes = {c: _classes_in(frame[c], k, decimal_comma) for c, k in usable.items()}
    named_unusable = None
    for col in usable:
        words = _name_words(col)
        if any(w in LABEL_WORDS for w in words):
            n = classes[col]
            if n is not None and n >= 2:
                return LabelGuess(col, f"its name ({col!r}) says it is what the rows are classified by; "
                                       f"it has {n} classes")
            named_unusable = named_unusable or col
    most = min(LABEL_MAX_CLASSES, max(2, rows // ROWS_PER_CLASS))
    for col in reversed(list(usable)):
        n = classes[col]
        if n is not None and 2 <= n <= most:
            last = col == list(usable)[-1]
            where = "the last column" if last else "the last column with few different values"
            return LabelGuess(col, f"it is {where} ({n} classes in {rows:,} rows), where a table's label usually is"
                              + (f"; {named_unusable!r} is named like a label but holds too many different numbers"
                                 if named_unusable else ""))
    return LabelGuess(None, "no column is named like a label (target, label, class, y, outcome) and none has few "
                            f"enough different values to be classes (2 to {most})")


# ---- the import -------------------------------------------------------------------

def import_csv(source: bytes, name: str, column_types: dict | None = None, label_column: str | None = None,
               missing: str = "drop", filename: str | None = None, header: bool | None = None,
               guess_label: bool = False) -> CsvReport:
    """Read a CSV upload into a :class:`TableData` and report what was done.

    ``column_types`` overrides the inferred type of some or all columns
    (``numeric`` / ``categorical`` / ``boolean`` / ``ignore``); ``label_column``
    names the class column the usefulness report predicts (with
    ``guess_label`` and no ``label_column``: the column
    :func:`guess_label_column` picks; the report's ``label_guess`` says which,
    and why, either way); ``missing`` is
    ``"drop"`` (drop rows with a missing cell) or ``"fill"``; ``header`` forces
    the first line to be (True) or not be (False) the column names.

    Raises :class:`UserError` for a file that is not a readable table: binary
    content, rows that do not line up (naming the lines), a single column, or
    fewer than 20 rows.
    """
    name = check_name(name)
    shown = f"{filename!r}" if filename else "the file"
    if missing not in ("drop", "fill"):
        raise UserError(f"missing-value policy must be 'drop' or 'fill', not {missing!r}")
    text, encoding, note = _decode(bytes(source), filename)
    delimiter = _detect_delimiter(text)
    rows, lines = _read_rows(text, delimiter, shown)
    if not rows:
        raise UserError(f"{shown} has no rows")
    decimal_comma = delimiter != ","
    has_header = _detect_header(rows, decimal_comma) if header is None else bool(header)
    if has_header:
        first, rows, lines = rows[0], rows[1:], lines[1:]
        ncol = len(first)
        while ncol > 1 and not first[ncol - 1] and all(len(r) < ncol or not r[ncol - 1] for r in rows):
            ncol -= 1  # a trailing delimiter on every line
    else:
        first = None
        counts = np.bincount([len(r) for r in rows])
        ncol = int(np.argmax(counts))
    if ncol > MAX_COLUMNS:
        raise UserError(f"{shown} has {ncol:,} columns; the limit is {MAX_COLUMNS}. Save a copy with only the columns "
                        "you want to generate (leave out identifiers and free text) and upload that")
    if ncol < 2:
        tried = ", ".join(DELIMITER_NAMES[d] for d in DELIMITERS)
        raise UserError(f"{shown} has only one column (tried {tried} as separators). A table needs at least two columns, "
                        "for example some measurements and a class; if your file uses another separator, save it as a comma-separated CSV")

    # Line the rows up with the header: repair what can be repaired, drop the rest.
    good, good_lines, bad, repaired = [], [], [], 0
    for row, line in zip(rows, lines):
        if len(row) > ncol:
            if any(row[ncol:]):
                bad.append((line, f"{len(row)} fields where the header has {ncol}"))
                continue
            row, repaired = row[:ncol], repaired + 1
        elif len(row) < ncol:
            if len(row) < (ncol + 1) // 2:
                bad.append((line, f"only {len(row)} field(s) where the header has {ncol}"))
                continue
            row, repaired = row + [""] * (ncol - len(row)), repaired + 1
        good.append(row)
        good_lines.append(line)
    rows_read = len(rows)
    if bad and len(bad) > max(2, 0.05 * rows_read):
        where = ", ".join(str(ln) for ln, _ in bad[:5])
        raise UserError(
            f"the rows of {shown} do not line up with the header: line {bad[0][0]} has {bad[0][1]}, and {len(bad)} of "
            f"{rows_read} rows are like that (lines {where}{', ...' if len(bad) > 5 else ''}). The separator detected was "
            f"{DELIMITER_NAMES[delimiter]}; check it, and check for values containing it without quotes around them")
    if rows_read < MIN_ROWS:
        raise UserError(f"{shown} has {rows_read} data row(s); at least {MIN_ROWS} are needed to train a model on a table")

    names = _column_names(first, ncol)
    raw = pd.DataFrame(good, columns=names, index=good_lines, dtype=object)
    raw = raw.mask(raw.apply(lambda s: s.str.lower().isin(MISSING_TOKENS)), np.nan)
    warnings = []
    empty = [c for c in names if raw[c].isna().all()]
    given = dict(column_types or {})
    for col in empty:
        if given.get(col, "ignore") == "ignore":
            warnings.append(f"Column {col!r} is empty and was left out.")
            given[col] = "ignore"
    types = {**infer_types(raw.drop(columns=[c for c in given if c in raw.columns]), decimal_comma), **given}
    label_guess = guess_label_column(raw, types, decimal_comma)
    label = label_column or (label_guess.column if guess_label else None)
    if label is not None:
        if label not in raw.columns:
            raise UserError(f"label column {label!r} is not in the table; the columns are {', '.join(names)}")
        if types.get(label) == "ignore":
            raise UserError(f"the label column {label!r} cannot be ignored")
        if types[label] == "numeric":
            numbers = _numbers(raw[label], decimal_comma)
            if label not in given and _whole(numbers) and numbers.nunique() <= LABEL_MAX_CLASSES:
                types[label] = "categorical"
            else:
                raise UserError(f"label column {label!r} holds numbers with {numbers.nunique()} different values; a label must "
                                "name a class (set its type to categorical if its values are classes)")
    typed, ignored, coerced = _apply_types(raw, types, decimal_comma)
    coerced.sort(key=lambda t: t[0])
    if typed.shape[1] < 2:
        raise UserError("fewer than two columns are left after leaving out ignored or empty columns; a table needs at least two")
    # Missing values: drop the row, or fill the cell.
    missing_mask = typed.isna()
    dropped, dropped_examples, filled = 0, [], 0
    reasons = {(idx, col): val for idx, col, val in coerced}
    if missing == "drop":
        row_has = missing_mask.any(axis=1)
        for line in row_has[row_has].index[:MAX_EXAMPLES]:
            col = missing_mask.columns[missing_mask.loc[line].to_numpy().argmax()]
            why = (f"{reasons[(line, col)]!r} in {col!r} is not {types[col]}" if (line, col) in reasons
                   else f"missing value in {col!r}")
            dropped_examples.append((int(line), why))
        dropped = int(row_has.sum())
        typed = typed[~row_has]
    else:
        for col in typed.columns:
            holes = typed[col].isna()
            if not holes.any():
                continue
            present = typed[col].dropna()
            if types[col] == "numeric":
                value = float(present.median())
                typed[col] = typed[col].fillna(round(value) if pd.api.types.is_integer_dtype(typed[col].dtype) else value)
            else:
                typed[col] = typed[col].fillna(present.mode().iloc[0])
            filled += int(holes.sum())
    for ln, why in bad:
        dropped_examples.append((ln, why))
    dropped_examples.sort()
    dropped += len(bad)
    if len(typed) < MIN_ROWS:
        raise UserError(f"only {len(typed)} of {rows_read} rows are left after dropping rows with missing or unreadable values; "
                        f"at least {MIN_ROWS} are needed. Choose 'fill' for missing values, or fix the file")
    typed = _settle_dtypes(typed.reset_index(drop=True))
    final_types = {c: types[c] for c in typed.columns}
    for col in typed.columns:
        if final_types[col] == "categorical":
            distinct = typed[col].nunique()
            if distinct > 20 and distinct > 0.5 * len(typed):
                warnings.append(f"Column {col!r} has {distinct} different values in {len(typed)} rows; it looks like an "
                                "identifier or free text. Consider setting its type to 'ignore'.")
        if final_types[col] == "numeric" and typed[col].nunique() <= 1:
            warnings.append(f"Column {col!r} has the same value in every row.")
    if label is not None and typed[label].nunique() < 2:
        warnings.append(f"The label column {label!r} has a single class; usefulness scores need at least two.")
    description = f"Uploaded table{f' {filename}' if filename else ''}: {len(typed)} rows, {typed.shape[1]} columns."
    data = TableData(name=name, frame=typed, column_types=final_types, label_column=label, description=description)
    return CsvReport(
        data=data, delimiter=delimiter, encoding=encoding, encoding_note=note, has_header=has_header,
        column_types=final_types, integer_columns=integer_columns_of(typed), rows_read=rows_read,
        rows_kept=len(typed), missing_policy=missing, dropped_rows=dropped,
        dropped_examples=dropped_examples[:MAX_EXAMPLES], coerced_cells=len(coerced),
        coerced_examples=[(int(i), c, v) for i, c, v in coerced[:MAX_EXAMPLES]],
        filled_cells=filled, repaired_rows=repaired, ignored_columns=[c for c in ignored if c not in empty],
        warnings=warnings, label_guess=label_guess,
    )


def _settle_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy dtypes once nothing is missing (int64, float64, bool, text)."""
    for col in frame.columns:
        dtype = frame[col].dtype
        if isinstance(dtype, pd.Int64Dtype):
            frame[col] = frame[col].astype("int64")
        elif isinstance(dtype, pd.BooleanDtype):
            frame[col] = frame[col].astype(bool)
        elif not pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            frame[col] = frame[col].astype(str)
    return frame


# ---- export ------------------------------------------------------------------------

#: what a spreadsheet reads as the start of a formula (or, for tab and carriage
#: return, hides one behind): ``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as UTF-8 CSV bytes that are safe to open in a spreadsheet.

    A text cell (or column name) starting with ``= + - @``, a tab or a carriage
    return gets a leading apostrophe, so Excel or LibreOffice shows it as text
    instead of running it as a formula (OWASP's "CSV injection"). Number and
    yes/no columns are written as they are, and so is a text cell that reads
    as a number (``-3.5``, ``+1``): only text that is not a number is escaped.
    Lines end in CRLF. Every table the studio exports as CSV goes through here.
    """
    out = frame.copy()
    out.columns = [_escape_cell(str(c)) for c in out.columns]
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            continue
        out.isetitem(i, column.map(lambda v: _escape_cell(v) if isinstance(v, str) else v))
    # CRLF, the CSV standard's line end: the csv writer then quotes any cell holding a lone
    # carriage return, which a "\n" file would leave bare (and break the row in two)
    return out.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def _escape_cell(value: str) -> str:
    if value.startswith(FORMULA_STARTS) and not _is_number(value.strip()):
        return "'" + value
    return value


# ---- upload codec: CSV text plus a JSON of types (never pickle) ----------------------

def _save_table(data: TableData, folder: Path) -> None:
    frame = data.frame
    (folder / "table.csv").write_text(frame.to_csv(index=False), encoding="utf-8")
    types = dict(column_types=dict(data.column_types), integer_columns=integer_columns_of(frame),
                 label_column=data.label_column, columns=[str(c) for c in frame.columns])
    (folder / "types.json").write_text(json.dumps(types, indent=2), encoding="utf-8")


def _load_table(folder: Path, meta: dict) -> TableData:
    types = json.loads((folder / "types.json").read_text(encoding="utf-8"))
    raw = pd.read_csv(folder / "table.csv", dtype=str, keep_default_na=False, na_filter=False)
    raw = raw.astype(object)
    typed, _, _ = _apply_types(raw, types["column_types"], integer_columns=types["integer_columns"])
    typed = _settle_dtypes(typed[types["columns"]])
    return TableData(name=meta["name"], frame=typed, column_types=dict(types["column_types"]),
                     label_column=types.get("label_column"), description=meta.get("description", ""))


upload_codec("table", _save_table, _load_table)


# ---- built-in tables ------------------------------------------------------------------

@builtin("iris", "table", "Fisher's iris flowers (scikit-learn): 150 rows, four measurements in cm and the species (label).",
         summary=dict(kind="table", count=150, columns=5, label_column="species"))
def iris() -> TableData:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    frame = pd.DataFrame(bunch.data, columns=names).round(1)
    frame["species"] = pd.Series(np.asarray(bunch.target_names)[bunch.target]).astype(str)
    types = {**{n: "numeric" for n in names}, "species": "categorical"}
    return TableData("iris", frame, types, label_column="species",
                     description="Fisher's iris data: sepal and petal length and width (cm) of 150 flowers of three species.")


ECOMMERCE_SEED = 20240601


def ecommerce(rows: int = 5000, seed: int = ECOMMERCE_SEED) -> TableData:
    """Simulated sessions of an online shop, one row per visitor session.

    The generative process (each line depends on the ones above it, so the
    columns carry real dependencies):

    1. ``device`` ~ Categorical(mobile 0.55, desktop 0.35, tablet 0.10).
    2. ``returning`` ~ Bernoulli(p), p = 0.30 (mobile), 0.45 (desktop),
       0.35 (tablet): desktop visitors come back more often.
    3. a hidden interest level u ~ Normal(0, 1), not in the table.
    4. ``views`` = 1 + Poisson(exp(1.5 + 0.45 u + 0.30 returning
       + 0.20 [desktop])): interested and returning visitors view more pages.
    5. ``searches`` ~ Poisson(0.25 views + 0.2 [desktop]).
    6. ``time_on_site`` (minutes, one decimal) = views x 0.6 x
       LogNormal(0, 0.4) + Exponential(0.5), and 0.5 minutes more on a tablet.
    7. ``cart_adds`` ~ Binomial(views, sigmoid(-2.6 + 0.9 u + 0.4 returning)).
    8. ``purchase`` ~ Bernoulli(sigmoid(-3.6 + 1.5 min(cart_adds, 4)
       + 0.7 returning + 0.15 searches - 0.5 [mobile])), and never without a
       cart add (no cart, no purchase).

    ``purchase`` is the label (about one session in six buys). The seed is
    fixed, so every install builds the same table.
    """
    rng = np.random.default_rng(seed)
    device = rng.choice(np.array(["mobile", "desktop", "tablet"]), size=rows, p=[0.55, 0.35, 0.10])
    desktop, mobile, tablet = (device == "desktop"), (device == "mobile"), (device == "tablet")
    returning = rng.random(rows) < np.select([mobile, desktop], [0.30, 0.45], 0.35)
    interest = rng.standard_normal(rows)
    views = 1 + rng.poisson(np.exp(1.5 + 0.45 * interest + 0.30 * returning + 0.20 * desktop))
    searches = rng.poisson(0.25 * views + 0.2 * desktop)
    time_on_site = views * 0.6 * rng.lognormal(0.0, 0.4, rows) + rng.exponential(0.5, rows) + 0.5 * tablet
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    cart_adds = rng.binomial(views, sigmoid(-2.6 + 0.9 * interest + 0.4 * returning))
    logit = -3.6 + 1.5 * np.minimum(cart_adds, 4) + 0.7 * returning + 0.15 * searches - 0.5 * mobile
    purchase = (rng.random(rows) < sigmoid(logit)) & (cart_adds > 0)
    frame = pd.DataFrame({
        "views": views.astype("int64"),
        "searches": searches.astype("int64"),
        "cart_adds": cart_adds.astype("int64"),
        "time_on_site": np.round(time_on_site, 1),
        "device": pd.Series(device).astype(str),
        "returning": returning.astype(bool),
        "purchase": purchase.astype(bool),
    })
    types = dict(views="numeric", searches="numeric", cart_adds="numeric", time_on_site="numeric",
                 device="categorical", returning="boolean", purchase="boolean")
    return TableData("ecommerce", frame, types, label_column="purchase",
                     description="Simulated online-shop sessions (5,000 rows): page views, searches, cart adds, minutes on "
                                 "site, device, returning visitor, and whether the session ended in a purchase (label).")


builtin("ecommerce", "table", "Simulated online-shop sessions: views, searches, cart adds, time on site, device, "
        "returning visitor and purchase (label); 5,000 rows from a documented process.",
        summary=dict(kind="table", count=5000, columns=7, label_column="purchase"))(ecommerce)


# ---- statistics for the Data page -------------------------------------------------------

def table_stats(data: TableData, bins: int = 20, top: int = 20) -> dict[str, Any]:
    """Per-column summaries and correlations, JSON-able, for previews and charts.

    ``columns[name]`` holds ``type``, ``missing``, ``distinct`` and either
    ``mean/std/min/q1/median/q3/max`` with a histogram (``edges``, ``counts``)
    for numbers, or ``values``/``counts`` (most frequent first, the rest summed
    as ``(other)``) for categories. ``correlation`` is Pearson's r between
    numeric and boolean columns; ``association`` is a 0..1 strength for every
    pair (|r| for two numbers, the correlation ratio for a number and a
    category, Cramer's V for two categories). Both cover at most
    :data:`HEAT_MAP_COLUMNS` columns (see :func:`heat_map_columns`); their
    ``of`` says how many columns there were to choose from.
    """
    frame = data.frame
    columns: dict[str, Any] = {}
    for col, kind in data.column_types.items():
        series = frame[col]
        info: dict[str, Any] = dict(type=kind, missing=int(series.isna().sum()), distinct=int(series.nunique()))
        present = series.dropna()
        if kind == "numeric":
            values = present.astype(float).to_numpy()
            info["integer"] = bool(pd.api.types.is_integer_dtype(series.dtype))
            if len(values):
                q = np.quantile(values, [0, 0.25, 0.5, 0.75, 1])
                info.update(mean=float(values.mean()), std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                            min=float(q[0]), q1=float(q[1]), median=float(q[2]), q3=float(q[3]), max=float(q[4]))
                counts, edges = np.histogram(values, bins=_bins_for(values, bins))
                info.update(edges=edges.tolist(), counts=counts.tolist())
        else:
            freq = present.astype(str).value_counts()
            values, counts = freq.index[:top].tolist(), freq.to_numpy()[:top].tolist()
            if len(freq) > top:
                values.append("(other)")
                counts.append(int(freq.to_numpy()[top:].sum()))
            info.update(values=values, counts=[int(c) for c in counts])
        columns[col] = info
    all_numeric = [c for c, k in data.column_types.items() if k in ("numeric", "boolean")]
    numeric = heat_map_columns(all_numeric, data.label_column)
    corr = frame[numeric].astype(float).corr().fillna(0.0) if len(numeric) > 1 else pd.DataFrame()
    names = heat_map_columns(list(data.column_types), data.label_column)
    assoc = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):  # symmetric: each pair once
            b = names[j]
            assoc[i, j] = assoc[j, i] = _association(frame[a], data.column_types[a], frame[b], data.column_types[b])
    return dict(
        rows=len(frame), label_column=data.label_column, columns=columns,
        correlation=dict(columns=numeric, matrix=corr.to_numpy().round(4).tolist(), of=len(all_numeric)),
        association=dict(columns=names, matrix=np.round(assoc, 4).tolist(), of=len(data.column_types)),
    )


def heat_map_columns(columns: list[str], label_column: str | None = None) -> list[str]:
    """The columns a heat map covers: all of them up to :data:`HEAT_MAP_COLUMNS`,
    else the first ones, the label column always among them (in table order)."""
    if len(columns) <= HEAT_MAP_COLUMNS:
        return list(columns)
    first = list(columns[:HEAT_MAP_COLUMNS])
    if label_column in columns and label_column not in first:
        first[-1] = label_column
    return first


def _bins_for(values: np.ndarray, bins: int):
    """Whole numbers with a small range get one bar per value."""
    lo, hi = float(values.min()), float(values.max())
    if np.all(np.mod(values, 1) == 0) and hi - lo < bins:
        return np.arange(lo - 0.5, hi + 1.5)
    return bins if hi > lo else np.array([lo - 0.5, lo + 0.5])


def _association(a: pd.Series, kind_a: str, b: pd.Series, kind_b: str) -> float:
    both = pd.concat([a, b], axis=1).dropna()
    if len(both) < 3:
        return 0.0
    x, y = both.iloc[:, 0], both.iloc[:, 1]
    num_a, num_b = kind_a != "categorical", kind_b != "categorical"
    if num_a and num_b:
        r = np.corrcoef(x.astype(float), y.astype(float))[0, 1]
        return float(abs(r)) if np.isfinite(r) else 0.0
    if num_a != num_b:
        values, groups = (x.astype(float), y.astype(str)) if num_a else (y.astype(float), x.astype(str))
        total = ((values - values.mean()) ** 2).sum()
        if total == 0:
            return 0.0
        between = values.groupby(groups).agg(lambda v: len(v) * (v.mean() - values.mean()) ** 2).sum()
        return float(np.sqrt(between / total))
    table = pd.crosstab(x.astype(str), y.astype(str)).to_numpy().astype(float)
    if min(table.shape) < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / table.sum() / (min(table.shape) - 1)))
