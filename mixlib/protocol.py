"""The comparison's protocol as data: which runs, in which order, and which claims they test.

Fixed before the first run (``results/protocol.md`` explains each choice; changes after the
runs started are listed there with their reason). ``python -m mixlib.sweep`` runs what
``runs()`` lists, at the E its pilot decides (``pilot_epochs``), and the results folder lacks;
``mixlib.results.verdicts`` reads every claim's verdict off the finished runs with the rule
stated in ``Claim``.

    from mixlib import protocol
    protocol.PILOT_RUNS     # the pilot: does E stand? (protocol.pilot_epochs decides)
    protocol.RUNS           # every run in the sweep's order, at E
    protocol.runs(cifar_epochs=30)  # the same at 2E, if the pilot flips
    protocol.CLAIMS         # what the runs test
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Run", "Claim", "model_name", "EPOCHS", "SEEDS", "MARGIN", "PILOT", "MAIN", "ABLATIONS",
           "CLAIM_ORDER", "LATER_SEED_MINUTES", "IMAGENETTE", "IMAGENETTE_EPOCHS",
           "IMAGENETTE_SIZE", "PILOT_RUNS", "RUNS", "CLAIMS", "runs", "runs_of", "pilot_epochs",
           "claim_order"]

EPOCHS = 15  # E: every CIFAR-10 run of the sweep (the pilot checks it against 2E)
SEEDS = (0, 1, 2)
MARGIN = 1.0  # accuracy points: "about equal" means the whole 95% interval lies within ±MARGIN
IMAGENETTE_EPOCHS = 10
IMAGENETTE_SIZE = 128

# the twelve small presets: eleven mixers and CoAtNet's C-C-T-T
MAIN = ("dwconv", "ddwconv", "idwconv", "pooling", "window_attention", "neighborhood_attention",
        "relative_attention", "lka", "elsa", "gnconv", "global_filter", "cctt")
# presets that exist only for a claim: CoAtNet's other layouts (C-C-C-C and T-T-T-T are dwconv
# and relative_attention), the position bias removed, gnConv of order 1
ABLATIONS = ("ccct", "cttt", "window_attention_nobias", "neighborhood_attention_nobias",
             "gnconv_order1")
# the pilot: DW conv against local attention (the book's central pair) at E and 2E, seed 0
PILOT = ("dwconv", "neighborhood_attention")
# the receptive-field claims at 128 px (maps 32, 16, 8, 4)
IMAGENETTE = ("dwconv", "lka", "global_filter", "window_attention", "neighborhood_attention",
              "idwconv")


def model_name(preset: str, data: str) -> str:
    """The small preset a mixer part trains on a data set: ("dwconv", "cifar10") ->
    "dwconv_cifar", ("lka", "imagenette") -> "lka_imagenette"."""
    return f"{preset}_{'cifar' if data == 'cifar10' else data}"


@dataclass(frozen=True)
class Run:
    """One training run of ``python -m mixlib.train`` with the book's recipe (its defaults)."""

    preset: str  # a small preset's mixer part: "dwconv" trains dwconv_cifar on CIFAR-10
    seed: int
    epochs: int = EPOCHS
    data: str = "cifar10"

    @property
    def model(self) -> str:
        return model_name(self.preset, self.data)

    @property
    def name(self) -> str:
        return f"{self.model}-s{self.seed}-e{self.epochs}"

    def train_args(self) -> list[str]:
        """The arguments of ``python -m mixlib.train`` (without --out, --name, --resume)."""
        args = ["--model", self.model, "--data", self.data, "--seed", str(self.seed),
                "--epochs", str(self.epochs)]
        if self.data == "imagenette":
            args += ["--image-size", str(IMAGENETTE_SIZE)]
        return args


def _seeds(presets, seeds, **kwargs) -> list[Run]:
    return [Run(preset, seed, **kwargs) for seed in seeds for preset in presets]


# the pilot: seed 0 of its two presets at E, then at 2E
PILOT_RUNS: tuple[Run, ...] = tuple([Run(p, 0) for p in PILOT]
                                    + [Run(p, 0, 2 * EPOCHS) for p in PILOT])


def pilot_epochs(accuracy: Mapping[tuple[str, int], float]) -> int | None:
    """E as the pilot decides it, from its runs' final test accuracies keyed by (preset, epochs).

    EPOCHS stands if the pilot's two presets come out in the same strict order at E and at 2E;
    if the order flips, or either budget ties, E becomes 2E for every CIFAR-10 run. None while
    one of the four accuracies is missing.
    """
    first, second = PILOT
    try:
        gaps = [accuracy[(first, e)] - accuracy[(second, e)] for e in (EPOCHS, 2 * EPOCHS)]
    except KeyError:
        return None
    return EPOCHS if gaps[0] * gaps[1] > 0 else 2 * EPOCHS


@dataclass(frozen=True)
class Claim:
    """A paper's claim, as a comparison of presets at the protocol's budget.

    The difference is ``a − b`` in test accuracy points, seed by seed (paired: seed s of a
    against seed s of b). With the 95% t-interval of its mean over seeds, the verdict is:

    - kind "better" (a beats b): "reproduces" if the interval lies above 0, "contradicts" if
      it lies below 0, else "undecided at this scale";
    - kind "equal" (a about equals b): "reproduces" if the interval lies within ±MARGIN,
      "contradicts" if it lies wholly outside (beyond +MARGIN or below −MARGIN), else undecided;
    - kind "best" (a beats each of `b`, a tuple): "reproduces" if every interval lies above 0,
      "contradicts" if any lies below 0, else undecided.

    Fewer paired seeds than `SEEDS` holds (three) give "pending" (`results.verdict`).
    """

    key: str
    statement: str
    paper: str  # bibliography key (book/references.bib)
    a: str
    b: str | tuple[str, ...]
    kind: str = "better"
    data: str = "cifar10"

    def __post_init__(self):
        kinds = ("better", "equal", "best")
        if self.kind not in kinds:
            raise ValueError(f"kind must be one of {kinds}, got {self.kind!r} (claim {self.key!r})")
        if (self.kind == "best") != isinstance(self.b, tuple):
            raise ValueError(f"b must be a tuple of rivals exactly when kind is 'best', got "
                             f"b={self.b!r} with kind={self.kind!r} (claim {self.key!r})")
        if self.kind == "best" and not self.b:
            raise ValueError(f"b must name at least one rival, got b=() (claim {self.key!r})")
        if self.data not in ("cifar10", "imagenette"):
            raise ValueError(f"data must be 'cifar10' or 'imagenette', got {self.data!r} "
                             f"(claim {self.key!r})")

    @property
    def rivals(self) -> tuple[str, ...]:
        """The presets `a` is compared with: `b`, or each of them for kind "best"."""
        return self.b if isinstance(self.b, tuple) else (self.b,)

    @property
    def presets(self) -> frozenset[str]:
        """Both sides' presets: the runs a verdict waits for."""
        return frozenset((self.a, *self.rivals))


CLAIMS: tuple[Claim, ...] = (
    Claim("dw_vs_window", "A depthwise convolution is about as good as local (window) attention",
          "han2022connection", "dwconv", "window_attention", "equal"),
    Claim("ddw_over_dw", "Dynamic weights help: D-DW beats the static DW conv",
          "han2022connection", "ddwconv", "dwconv"),
    Claim("idw_over_dw", "Dynamic weights help: I-D-DW beats the static DW conv",
          "han2022connection", "idwconv", "dwconv"),
    Claim("idw_vs_ddw", "Per-pixel and per-image dynamic kernels are about as good",
          "han2022connection", "idwconv", "ddwconv", "equal"),
    Claim("lka_over_dw", "A large kernel attention (21×21, decomposed) beats a 7×7 DW conv",
          "guo2023van", "lka", "dwconv"),
    Claim("cctt_best", "C-C-T-T is the best of CoAtNet's five vertical layouts",
          "dai2021coatnet", "cctt", ("dwconv", "ccct", "cttt", "relative_attention"), "best"),
    Claim("sliding_over_window", "Sliding windows beat non-overlapping windows",
          "zhou2021elsa", "neighborhood_attention", "window_attention"),
    Claim("bias_window", "The relative position bias matters for window attention",
          "zhou2021elsa", "window_attention", "window_attention_nobias"),
    Claim("bias_sliding", "The relative position bias matters for sliding-window attention",
          "zhou2021elsa", "neighborhood_attention", "neighborhood_attention_nobias"),
    Claim("order_helps", "Higher-order interactions help: gnConv of orders 2–5 beats order 1",
          "rao2022hornet", "gnconv", "gnconv_order1"),
    Claim("global_vs_local", "A global filter is about as good as a local 7×7 kernel",
          "rao2021gfnet", "global_filter", "dwconv", "equal"),
    Claim("learned_over_pooling", "A learned mixer beats pooling",
          "yu2022metaformer", "dwconv", "pooling"),
    Claim("lka_over_dw_128", "At 128 px, LKA's larger field beats a 7×7 DW conv",
          "guo2023van", "lka", "dwconv", data="imagenette"),
    Claim("global_vs_local_128", "At 128 px, a global filter is about as good as a 7×7 kernel",
          "rao2021gfnet", "global_filter", "dwconv", "equal", data="imagenette"),
    Claim("sliding_over_window_128", "At 128 px, sliding windows beat non-overlapping windows",
          "zhou2021elsa", "neighborhood_attention", "window_attention", data="imagenette"),
    Claim("idw_over_dw_128", "At 128 px, I-D-DW beats the static DW conv",
          "han2022connection", "idwconv", "dwconv", data="imagenette"),
)


# the minutes each CIFAR-10 preset's seeds 1 and 2 still needed when their order was fixed
# (2026-12-05, `python -m mixlib.sweep plan`: its estimates from the runs recorded on this
# machine; seed 1 of pooling and of cctt had run)
LATER_SEED_MINUTES = {
    "dwconv": 136, "pooling": 67, "window_attention": 150, "window_attention_nobias": 156,
    "ddwconv": 174, "idwconv": 260, "global_filter": 174, "lka": 184,
    "neighborhood_attention": 206, "neighborhood_attention_nobias": 180, "gnconv": 144,
    "gnconv_order1": 144, "ccct": 108, "cttt": 140, "relative_attention": 300, "cctt": 60,
    "elsa": 222,
}


def claim_order(minutes: Mapping[str, float],
                claims: Sequence[Claim] = CLAIMS) -> tuple[str, ...]:
    """The presets of `minutes` in the order that reads the CIFAR-10 claims' verdicts soonest.

    Greedily: next come the presets that the cheapest open claim still lacks, where a claim's
    price is the minutes of its missing presets divided by the number of claims they would
    complete (D-DW and I-D-DW together complete three); equal prices go to the claim listed
    first. Within a step, and for the presets no claim needs (last), the order of
    MAIN + ABLATIONS.
    """
    rank = {preset: i for i, preset in enumerate(MAIN + ABLATIONS)}

    def in_rank_order(presets):
        return sorted(presets, key=lambda p: (rank.get(p, len(rank)), p))

    needed = [c.presets for c in claims if c.data == "cifar10"]
    order: list[str] = []
    while open_claims := [c for c in needed if not c <= set(order)]:
        def price(claim):
            missing = claim - set(order)
            completed = sum(c <= set(order) | missing for c in open_claims)
            return sum(minutes[p] for p in missing) / completed

        cheapest = min(open_claims, key=price)  # min keeps the first of equal prices
        order += in_rank_order(cheapest - set(order))
    return tuple(order + in_rank_order(set(minutes) - set(order)))


# seeds 1 and 2 run preset by preset (both seeds of one before the next) in this order
CLAIM_ORDER: tuple[str, ...] = claim_order(LATER_SEED_MINUTES)


def runs(*, cifar_epochs: int = EPOCHS) -> tuple[Run, ...]:
    """The sweep's runs in the order it runs them, every CIFAR-10 run after the pilot at
    `cifar_epochs` (E, or 2E once the pilot has flipped: `pilot_epochs`).

    The pilot first (it decides whether E stands), then seed 0 of every CIFAR-10 preset, the
    ablations' included, before any second seed, so that every preset has a reading; then
    seeds 1 and 2 preset by preset in `CLAIM_ORDER`, so that an interrupted sweep has as many
    verdicts as it can; Imagenette last. Runs at E that finished before a flip stay as a
    second, smaller budget; none is added.
    """
    if cifar_epochs not in (EPOCHS, 2 * EPOCHS):
        raise ValueError(f"cifar_epochs must be E = {EPOCHS} or 2E = {2 * EPOCHS} (the pilot's "
                         f"two budgets), got {cifar_epochs!r}")
    return tuple(
        list(PILOT_RUNS)
        + _seeds([p for p in MAIN if p not in PILOT], [0], epochs=cifar_epochs)
        + _seeds(ABLATIONS, [0], epochs=cifar_epochs)
        + [Run(preset, seed, cifar_epochs) for preset in CLAIM_ORDER for seed in SEEDS[1:]]
        + _seeds(IMAGENETTE, SEEDS, epochs=IMAGENETTE_EPOCHS, data="imagenette")
    )


RUNS: tuple[Run, ...] = runs()  # as planned before the pilot: E = 15


def runs_of(preset: str, *, epochs: int = EPOCHS, data: str = "cifar10") -> list[Run]:
    """The protocol's runs of one preset at one budget, by seed (at 2E: as the pilot's flip
    would plan them, `runs(cifar_epochs=2 * EPOCHS)`)."""
    planned = RUNS if epochs != 2 * EPOCHS else runs(cifar_epochs=2 * EPOCHS)
    return [r for r in planned if (r.preset, r.epochs, r.data) == (preset, epochs, data)]
