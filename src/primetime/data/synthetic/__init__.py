"""Synthetic movie + TV worlds with a planted, known preference model.

A *world* is a catalog (movies, and TV shows with one catalog row per season),
a population of users, and an interaction log drawn from a generative model
whose exact next-item distribution is known. It serves three purposes: scale
tests (up to MovieLens-25M size), TV-specific behaviour (seasons, networks,
air dates, holidays, premieres, binge watching) and an *oracle* — the best
ranking any model could reach (EVALUATION.md).

The generative model
--------------------
Every user ``u`` has a schedule of event times (sessions on preferred days and
evening hours, see :func:`_user_schedule`), planned up front and independent of
what is watched. At the time ``t`` of each event, given the history ``H``
(item indices, oldest first), the next item is drawn from::

    p(i) = b · 1[i = ns] + (1 − b) · s(i) / Σ_j s(j)
    s(i) = Σ_k θ_uk(t) q_k(i)                       genre communities (taste mixture)
           · 1[released_i ≤ t] · (1 + ρ · 1[t − W < released_i])   premiere boost
           · exp(σ (x_u · y_i − 1))                 personal taste, unit vectors
           · h(i, t)                                holiday titles: 1 in December, 1/boost else
           · o(i, H)                                later season whose previous one is unseen: κ
           · 1[network_i subscribed by u] · 1[i ∉ H]

where ``ns`` is the next season of the last item of ``H`` and ``b = binge_prob``
when that season exists, has aired by ``t`` and is unseen (``b = 0`` otherwise);
``q_k(i) ∝ popularity_i · affinity_ik · (holiday_boost if i is a holiday title)``;
``θ_u(t)`` moves linearly from ``theta_start`` to ``theta_end`` over the user's
planned active window (taste drift); ``ρ = premiere_boost − 1`` and ``W =
premiere_days``. Items are never repeated. :meth:`World.next_item_probs`
evaluates exactly this formula over the whole catalog.

The generator samples it exactly without touching the whole catalog per event
(a Gumbel-max over 60k logits for each of 25M events would be ~10^12 draws):
candidates are proposed from ``Σ_k θ_k q_k (1 + ρ 1[recent])`` — Walker alias
tables per community plus premiere-window components — and accepted with
probability equal to the remaining factors (all in [0, 1]), which is plain
rejection sampling; the few users still unserved after ``rounds`` rounds
(with doubling candidate counts) are drawn by inverse CDF from the full
``s(i)``. Tests check the sampler against :meth:`World.next_item_probs` with a
chi-square test, and the generated log against the oracle's entropy.

Ratings and event types (``play`` / ``complete`` / ``rate``) come from the
same latent affinity ``σ x_u·y_i + log(Σ_k θ_uk(t) affinity_ik / max_k θ_uk(t))``
plus noise; they never influence what is watched next.

Modules
-------
* :mod:`.vocab` — word lists: the genre tree, holiday keywords, tones, networks, names.
* :mod:`.config` — :class:`WorldConfig` and the named :data:`PRESETS`.
* :mod:`.truth` — the planted latents (:class:`WorldLatents`) and the exact
  next-item model over them (:class:`TrueModel`): the oracle and the sampler.
* :mod:`.catalog` — movies and show seasons, their latents and knowledge graph.
* :mod:`.users` — users, their event schedules, and event generation in chunks
  (optionally on worker processes).
* :mod:`.world` — :class:`World`, :func:`generate`, save / load.
"""

from primetime.data.synthetic.catalog import NEVER
from primetime.data.synthetic.config import DAY, PRESETS, WorldConfig
from primetime.data.synthetic.truth import TrueModel, WorldLatents
from primetime.data.synthetic.vocab import (
    GENRE_TREE,
    HOLIDAY,
    HOLIDAY_KEYWORDS,
    NETWORKS,
    TONES,
    leaf_genres,
)
from primetime.data.synthetic.world import (
    WORLD_FORMAT_VERSION,
    World,
    generate,
    load_or_generate,
    saved_format,
)

__all__ = [
    "DAY",
    "GENRE_TREE",
    "HOLIDAY",
    "HOLIDAY_KEYWORDS",
    "NETWORKS",
    "NEVER",
    "PRESETS",
    "TONES",
    "WORLD_FORMAT_VERSION",
    "TrueModel",
    "World",
    "WorldConfig",
    "WorldLatents",
    "generate",
    "leaf_genres",
    "load_or_generate",
    "saved_format",
]
