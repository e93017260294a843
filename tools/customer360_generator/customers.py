"""Synthetic CRM extracts (``customers``) in the IBM Telco Customer Churn layout.

Why modelled on the IBM sample rather than independent random columns: the pipeline's checks and
the churn marts downstream only mean something on data with the same shape as the real thing.
So the allowed values, the proportions and the couplings follow the sample
(shared/data/external/ibm-telco-churn): ``No phone service`` / ``No internet service`` exactly
when the underlying service is absent, MonthlyCharges built from the subscribed services and kept
in 18.25..118.75, tenure depending on the contract, churn far likelier on month-to-month,
TotalCharges roughly tenure x MonthlyCharges and a single space for tenure 0.

The CRM sends a full snapshot on the first day and deltas (changed or new customers) afterwards.
From a configurable day on it sends its newer release's layout: the 21 fields plus plan_id,
email, msisdn and updated_at. Personal data is obviously fictional (example.* mail domains,
555 exchange numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer360_generator import text
from customer360_generator.plans import PLAN_IDS_BY_CONTRACT

# The internet add-on services: one Yes/No/"No internet service" field each, in this order in the
# layout (CustomerBook.columns writes them in one loop, _ADDON_RATE and _ADDON_CENTS follow it).
ADDONS: tuple[str, ...] = (
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)
IBM_FIELDS: tuple[str, ...] = (
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    *ADDONS,
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
)
NEW_LAYOUT_EXTRA: tuple[str, ...] = ("plan_id", "email", "msisdn", "updated_at")
NEW_LAYOUT_FIELDS: tuple[str, ...] = IBM_FIELDS + NEW_LAYOUT_EXTRA

CONTRACTS: tuple[str, ...] = ("Month-to-month", "One year", "Two year")
PAYMENT_METHODS: tuple[str, ...] = (
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
)
INTERNET: tuple[str, ...] = ("DSL", "Fiber optic", "No")
_NO, _YES = 0, 1
_NO_INTERNET = 2

# Take-up rates among internet subscribers and price per add-on, read off the IBM sample.
_ADDON_RATE = np.array([0.37, 0.44, 0.44, 0.37, 0.49, 0.50])
_ADDON_CENTS = np.array([500, 500, 500, 500, 1000, 1000])
_MIN_MONTHLY_CENTS, _MAX_MONTHLY_CENTS = 1825, 11875
_CHURN_BY_CONTRACT = np.array([0.43, 0.11, 0.03])
_ID_SPACE = 10_000 * 26**5
# plan_id by [contract, plan_pick]: each contract's current plans repeated to six picks.
_PLAN_PICKS = 6
_PLAN_TABLE = np.array([[ids[p % len(ids)] for p in range(_PLAN_PICKS)] for ids in
                        (PLAN_IDS_BY_CONTRACT[c] for c in CONTRACTS)])  # fmt: skip

_FIRST_NAMES = ("alex", "maria", "john", "wei", "fatima", "carlos", "emma", "noah", "olivia", "liam",
                "sofia", "raj", "yuki", "ana", "omar", "grace", "lucas", "mia", "ivan", "zoe")  # fmt: skip
_LAST_NAMES = ("smith", "garcia", "nguyen", "chen", "patel", "kim", "lopez", "brown", "davis", "khan",
               "silva", "martin", "lee", "walker", "young", "hall", "rivera", "ito", "novak", "moore")  # fmt: skip
_MAIL_DOMAINS = ("example.com", "example.net", "example.org")
_AREA_CODES = ("209", "213", "310", "408", "415", "510", "530", "559", "619", "650",
               "707", "714", "805", "818", "909", "916", "925", "949")  # fmt: skip
# The CRM runs in California; a few records are stamped by a UTC batch job instead.
_UPDATED_AT_LABELS = ("-08:00", "Z")
_UPDATED_AT_OFFSETS = np.array([-480, 0])


def customer_ids(rng: np.random.Generator, n: int, taken: set[str] | frozenset[str] = frozenset()) -> np.ndarray:
    """``n`` distinct IDs like ``7590-VHVEG`` (``^[0-9]{4}-[A-Z]{5}$``), none of them in ``taken``."""
    out: list[np.ndarray] = []
    have: set[str] = set(taken)
    missing = n
    while missing > 0:
        # Oversample a little; collisions in a 1.2e11 space are rare, so one round nearly always does.
        codes = rng.integers(0, _ID_SPACE, size=missing + 16)
        _, first = np.unique(codes, return_index=True)
        codes = codes[np.sort(first)]
        ids = _render_ids(codes)
        fresh = ids[~np.isin(ids, np.array(sorted(have), dtype="U10"))] if have else ids
        fresh = fresh[:missing]
        out.append(fresh)
        have.update(fresh.tolist())
        missing -= len(fresh)
    return np.concatenate(out) if out else np.array([], dtype="U10")


def _render_ids(codes: np.ndarray) -> np.ndarray:
    chars = np.empty((len(codes), 10), dtype=np.uint8)
    digits, letters = np.divmod(codes, 26**5)
    for pos in range(3, -1, -1):
        digits, d = np.divmod(digits, 10)
        chars[:, pos] = ord("0") + d
    chars[:, 4] = ord("-")
    for pos in range(9, 4, -1):
        letters, c = np.divmod(letters, 26)
        chars[:, pos] = ord("A") + c
    return chars.view("S10").ravel().astype("U10")


def _draw_profiles(rng: np.random.Generator, n: int, *, tenure_zero_share: float) -> dict[str, np.ndarray]:
    """Demographics, services, contract and billing for ``n`` customers, coupled as in the sample."""
    contract = rng.choice(3, size=n, p=[0.55, 0.21, 0.24])
    # Month-to-month customers are mostly recent, two-year customers mostly long-standing.
    a = np.array([0.7, 1.5, 2.5])[contract]
    b = np.array([2.0, 1.2, 0.8])[contract]
    tenure = np.clip(np.rint(rng.beta(a, b) * 72), 1, 72).astype(np.int64)
    # The sample has tenure 0 (just signed, no bill yet) only on one- or two-year contracts.
    long_contract = np.flatnonzero(contract > 0)
    zero_count = min(len(long_contract), int(np.ceil(n * tenure_zero_share)))
    tenure[rng.choice(long_contract, size=zero_count, replace=False)] = 0

    phone = rng.random(n) < 0.903
    multi = phone & (rng.random(n) < 0.467)
    # Every customer without phone service in the sample has DSL.
    internet = np.where(phone, rng.choice(3, size=n, p=[0.273, 0.487, 0.240]), 0)
    has_internet = internet != _NO_INTERNET
    addons = (rng.random((n, len(ADDONS))) < _ADDON_RATE) & has_internet[:, None]

    partner = rng.random(n) < 0.483
    dependents = rng.random(n) < np.where(partner, 0.52, 0.10)
    senior = rng.random(n) < 0.162
    monthly = _monthly_cents(phone, multi, internet, addons, rng.normal(0.0, 120.0, n))
    # Historic bills drift around today's price (promotions, past price changes).
    total = np.rint(tenure * monthly * np.where(tenure > 1, rng.uniform(0.9, 1.1, n), 1.0) / 5) * 5
    churn_p = _CHURN_BY_CONTRACT[contract] * np.where(tenure < 12, 1.4, 0.85)
    return {
        "gender": (rng.random(n) < 0.505).astype(np.int64),
        "senior": senior,
        "partner": partner,
        "dependents": dependents,
        "tenure": tenure,
        "phone": phone,
        "multi": multi,
        "internet": internet.astype(np.int64),
        "addons": addons,
        "contract": contract.astype(np.int64),
        "paperless": rng.random(n) < 0.592,
        "payment": rng.choice(4, size=n, p=[0.336, 0.229, 0.219, 0.216]).astype(np.int64),
        "monthly": monthly,
        "total": total.astype(np.int64),
        "churn": rng.random(n) < np.minimum(churn_p, 0.9),
        "plan_pick": rng.integers(0, _PLAN_PICKS, size=n),
        "first": rng.integers(0, len(_FIRST_NAMES), size=n),
        "last": rng.integers(0, len(_LAST_NAMES), size=n),
        "mail_no": rng.integers(1, 100, size=n),
        "domain": rng.integers(0, len(_MAIL_DOMAINS), size=n),
        "area": rng.integers(0, len(_AREA_CODES), size=n),
        "line": rng.integers(0, 10_000, size=n),
        # How busy the customer is on the network: a few heavy users, a long tail of light ones.
        "activity": rng.lognormal(0.0, 1.0, size=n),
    }


def _monthly_cents(
    phone: np.ndarray, multi: np.ndarray, internet: np.ndarray, addons: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    cents = (
        phone * 1950 + multi * 475 + np.array([2500, 5000, 0])[internet] + (addons * _ADDON_CENTS).sum(axis=1) + noise
    )
    # Prices are multiples of 5 cents in the sample.
    return np.clip(np.rint(cents / 5) * 5, _MIN_MONTHLY_CENTS, _MAX_MONTHLY_CENTS).astype(np.int64)


@dataclass
class CustomerBook:
    """The CRM's current state, so deltas can be real changes of earlier records."""

    ids: np.ndarray
    attrs: dict[str, np.ndarray]
    created_day: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))

    @classmethod
    def create(cls, rng: np.random.Generator, n: int) -> CustomerBook:
        attrs = _draw_profiles(rng, n, tenure_zero_share=0.0016)
        return cls(customer_ids(rng, n), attrs, np.zeros(n, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def active_ids(self, day_index: int) -> np.ndarray:
        """IDs of customers that exist on ``day_index`` (snapshot plus earlier sign-ups)."""
        return self.ids[self.created_day <= day_index]

    def activity_weights(self, day_index: int) -> np.ndarray:
        weights = self.attrs["activity"][self.created_day <= day_index]
        return weights / weights.sum()

    def sign_up(self, rng: np.random.Generator, n: int, day_index: int) -> np.ndarray:
        """Add ``n`` brand-new customers (tenure 0, no bill yet); returns their row indices."""
        new = _draw_profiles(rng, n, tenure_zero_share=0.0)
        new["tenure"][:] = 0
        new["total"][:] = 0
        start = len(self.ids)
        self.ids = np.concatenate([self.ids, customer_ids(rng, n, taken=set(self.ids.tolist()))])
        self.attrs = {k: np.concatenate([v, new[k]]) for k, v in self.attrs.items()}
        self.created_day = np.concatenate([self.created_day, np.full(n, day_index, dtype=np.int64)])
        return np.arange(start, start + n)

    def apply_daily_changes(self, rng: np.random.Generator, day_index: int) -> np.ndarray:
        """Change 1-3% of the live customers the way a CRM day does; returns changed row indices."""
        a = self.attrs
        live = np.flatnonzero(~a["churn"] & (self.created_day < day_index))
        k = min(len(live), max(1, int(round(len(live) * rng.uniform(0.01, 0.03)))))
        chosen = rng.choice(live, size=k, replace=False)
        kind = rng.choice(4, size=k, p=[0.45, 0.25, 0.15, 0.15])

        # Billing day: another month of tenure and one more bill in the running total.
        bill = chosen[kind == 0]
        a["tenure"][bill] += 1
        a["total"][bill] += a["monthly"][bill]

        # Service change: toggle an add-on (internet customers) or the second line (phone only).
        svc = chosen[kind == 1]
        with_internet = svc[a["internet"][svc] != _NO_INTERNET]
        which = rng.integers(0, len(ADDONS), size=len(with_internet))
        a["addons"][with_internet, which] = ~a["addons"][with_internet, which]
        phone_only = svc[(a["internet"][svc] == _NO_INTERNET) & a["phone"][svc]]
        a["multi"][phone_only] = ~a["multi"][phone_only]
        a["monthly"][svc] = _monthly_cents(
            a["phone"][svc], a["multi"][svc], a["internet"][svc], a["addons"][svc], rng.normal(0.0, 120.0, len(svc))
        )

        # Retention offer: month-to-month customers commit, one-year customers extend.
        renew = chosen[kind == 2]
        a["contract"][renew] = np.minimum(a["contract"][renew] + 1 + (rng.random(len(renew)) < 0.3), 2)

        a["churn"][chosen[kind == 3]] = True
        return np.sort(chosen)

    def columns(self, rows: np.ndarray, *, new_layout: bool, day: date, rng: np.random.Generator) -> list[pa.Array]:
        """String columns for ``rows`` in the IBM layout, plus the newer release's four fields."""
        a = {k: v[rows] for k, v in self.attrs.items()}
        yes_no = ("No", "Yes")
        cols = [
            pa.array(self.ids[rows]),
            text.lookup(("Female", "Male"), a["gender"]),
            text.lookup(("0", "1"), a["senior"]),
            text.lookup(yes_no, a["partner"]),
            text.lookup(yes_no, a["dependents"]),
            text.int_strings(a["tenure"]),
            text.lookup(yes_no, a["phone"]),
            text.lookup(("No", "Yes", "No phone service"), np.where(a["phone"], a["multi"], 2)),
            text.lookup(INTERNET, a["internet"]),
        ]
        service_values = ("No", "Yes", "No internet service")
        no_internet = a["internet"] == _NO_INTERNET
        for j in range(len(ADDONS)):
            cols.append(text.lookup(service_values, np.where(no_internet, _NO_INTERNET, a["addons"][:, j])))
        total = text.fixed_point_strings(a["total"], 2, trim=True)
        cols += [
            text.lookup(CONTRACTS, a["contract"]),
            text.lookup(yes_no, a["paperless"]),
            text.lookup(PAYMENT_METHODS, a["payment"]),
            text.fixed_point_strings(a["monthly"], 2, trim=True),
            # The sample's quirk: a single space, not an empty field, when there is no bill yet.
            pc.if_else(pa.array(a["tenure"] == 0), " ", total),
            text.lookup(yes_no, a["churn"]),
        ]
        if new_layout:
            cols += self._new_layout_columns(a, day, rng)
        return cols

    @staticmethod
    def _new_layout_columns(a: dict[str, np.ndarray], day: date, rng: np.random.Generator) -> list[pa.Array]:
        n = len(a["contract"])
        plan_ids = _PLAN_TABLE[a["contract"], a["plan_pick"]]
        email = pc.binary_join_element_wise(
            text.lookup(_FIRST_NAMES, a["first"]),
            ".",
            text.lookup(_LAST_NAMES, a["last"]),
            text.int_strings(a["mail_no"]),
            "@",
            text.lookup(_MAIL_DOMAINS, a["domain"]),
            "",
        )
        msisdn = pc.binary_join_element_wise(
            "+1", text.lookup(_AREA_CODES, a["area"]), "555", pc.utf8_lpad(text.int_strings(a["line"]), 4, "0"), ""
        )
        # Changes happen in office hours, California time; the UTC-stamped ones are the batch job.
        offset = rng.choice(2, size=n, p=[0.85, 0.15])
        local = rng.integers(7 * 3600, 21 * 3600, size=n)
        utc_seconds = local - _UPDATED_AT_OFFSETS[offset] * 60
        updated = text.timestamp_strings(day, utc_seconds, _UPDATED_AT_OFFSETS[offset], offset, _UPDATED_AT_LABELS)
        return [pa.array(plan_ids), email, msisdn, updated]


def customers_csv(
    book: CustomerBook, rows: np.ndarray, *, new_layout: bool, day: date, rng: np.random.Generator
) -> bytes:
    fields = NEW_LAYOUT_FIELDS if new_layout else IBM_FIELDS
    return text.csv_bytes(fields, book.columns(rows, new_layout=new_layout, day=day, rng=rng))
