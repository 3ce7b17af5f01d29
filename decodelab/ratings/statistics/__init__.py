"""Statistics for rating sessions: rankings, intervals, agreement, annotator checks, active sampling.

Pure numpy/scipy, no Django: every function takes plain values and returns frozen dataclasses. Each module's
docstring states the definitions shown to users.
"""

from .active import ActiveVsUniform, next_pair, separated, simulate_active_vs_uniform
from .agreement import (
    AlphaResult,
    FleissResult,
    PairKappa,
    ReliabilityData,
    cohen_kappa,
    cohen_kappa_pairs,
    fleiss_kappa,
    krippendorff_alpha,
    reliability_data,
    vote_reliability_data,
)
from .bias import GoldAccuracy, PositionBias, gold_accuracy, position_bias
from .bradley_terry import BradleyTerryResult, ConfigScore, fit_bradley_terry, fit_bradley_terry_length_controlled
from .elo import elo_ratings
from .likert import LikertRating, LikertSummary, likert_summary
from .pairwise import OUTCOMES, OutcomeMatrices, Vote, outcome_matrices
from .pareto import ParetoPoint, pareto_frontier

__all__ = [
    "OUTCOMES",
    "ActiveVsUniform",
    "AlphaResult",
    "BradleyTerryResult",
    "ConfigScore",
    "FleissResult",
    "GoldAccuracy",
    "LikertRating",
    "LikertSummary",
    "OutcomeMatrices",
    "PairKappa",
    "ParetoPoint",
    "PositionBias",
    "ReliabilityData",
    "Vote",
    "cohen_kappa",
    "cohen_kappa_pairs",
    "elo_ratings",
    "fit_bradley_terry",
    "fit_bradley_terry_length_controlled",
    "fleiss_kappa",
    "gold_accuracy",
    "krippendorff_alpha",
    "likert_summary",
    "next_pair",
    "outcome_matrices",
    "pareto_frontier",
    "position_bias",
    "reliability_data",
    "separated",
    "simulate_active_vs_uniform",
    "vote_reliability_data",
]
