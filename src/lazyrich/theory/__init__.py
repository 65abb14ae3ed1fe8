"""Exact theory: closed-form dynamics and predictions returning the observers' names, so any run
overlays its prediction without glue (`overlay(run.records(), prediction)`).

| module | solution |
|---|---|
| `single_neuron` | Kunin et al.: a(t), w(t), β, μ, φ, S(0,t) for any δ and rates; basin; implicit bias Ψ_δ |
| `wide_linear` | Dominé et al. λ-balanced solution as a rank-h factor (function, grams, NTK); Kunin Thm 4.2 isotropic dynamics |
| `saxe` | Saxe et al. sigmoidal modes and learning times |
| `one_d` | 1-D-data two-layer linear net (Xu & Ziyin): p, ζ, NTK ratio, χ, phase boundary, mechanisms |
| `agf` | Alternating Gradient Flows: generic algorithm and the linear-network closed form |
| `balance` | blog's λ, ||Q||_op, per-neuron imbalance, Q under weight decay, exact GD drift, warmup |
| `atanasov` | η* ∝ γ² / γ^{2/L} and the deep-linear toy model's sharpness |
| `regime` | a-priori lazy / rich / ultra-rich predictor (+ horizon-aware, from data and init) |
| `relinearized` | kernel distance predicted at a horizon: lazy fit, relinearize, fit again |
| `kernel` | kernel ridge regression from the eigenstructure (eigenlearning), optimal ridge, cost of overfitting |
| `random_features` | random-feature ridge regression risk over features, samples and ridge |
| `word_embeddings` | Karkada et al. quadratic word embeddings: exact flow, step times, final embeddings |
| `ssl` | Simon et al. linearized Barlow Twins: stepwise eigenmodes, step times, kernel-PCA representation |
| `saddle_escape` | Bantzis et al. deep ReLU saddle escape: optimal escape direction, escape-time exponent |

Importing this package also registers the observers of `observables` (linear_map, single_neuron,
one_d, ntk_ratio).
"""
from typing import TYPE_CHECKING

from .._lazy import attach


def _register_observers() -> None:
    from . import observables  # noqa: F401  (registers observers; observe.make also imports it for unknown names)


# names load on first use (PEP 562) so `lazyrich predict --help` needs no torch
__getattr__, __dir__, _ = attach(__name__, {
    "agf": ["AGFPrediction", "agf", "linear_agf"],
    "kernel": ["KRRPrediction", "eigenlearning", "kernel_eigensystem", "optimal_ridge", "cost_of_overfitting", "overfitting_regime", "eigen_decay_exponent"],
    "random_features": ["RFPrediction", "rf_risk", "rf_optimal_ridge"],
    "word_embeddings": ["qwem_target", "qwem_flow", "final_embeddings", "exact_step_times", "sigmoid_step_times"],
    "ssl": ["ssl_prediction", "contrastive_matrix", "final_representation"],
    "saddle_escape": ["EscapeDirection", "optimal_escape_direction", "escape_time_exponent"],
    "atanasov": ["lr_law", "toy_max_lr", "toy_sharpness"],
    "checks": ["IllConditionedWarning"],
    "balance": ["PairBalance", "conserved_step", "conserved_under_decay", "decay_rate", "neuron_imbalance", "one_d_step_factor", "predict_balance", "warmup_regime"],
    "one_d": ["laziness", "mechanism", "mechanism_case", "one_d", "one_d_inputs", "phase", "phase_exponent"],
    "regime": ["RegimePrediction", "predict_regime", "predict_regime_from_table", "predict_regime_on_data"],
    "relinearized": ["relinearized_kernel_distance"],
    "saxe": ["decoupled_init", "half_time", "learning_time", "mode_strength", "saxe", "saxe_inputs"],
    "single_neuron": ["basin", "interpolating_limit", "interpolating_solution", "potential", "regime", "single_neuron", "single_neuron_inputs"],
    "trajectory": ["Trajectory", "merge", "overlay", "trajectory"],
    "wide_linear": ["aligned_mode", "isotropic", "lambda_balanced", "linear_inputs", "linear_ntk"],
}, before=_register_observers)

__all__ = [
    "Trajectory", "trajectory", "merge", "overlay",
    "single_neuron", "single_neuron_inputs", "basin", "regime", "potential", "interpolating_solution",
    "interpolating_limit",
    "lambda_balanced", "isotropic", "aligned_mode", "linear_ntk", "linear_inputs",
    "saxe", "saxe_inputs", "mode_strength", "learning_time", "half_time", "decoupled_init",
    "one_d", "one_d_inputs", "laziness", "phase", "phase_exponent", "mechanism", "mechanism_case",
    "agf", "linear_agf", "AGFPrediction",
    "predict_balance", "PairBalance", "neuron_imbalance", "decay_rate", "conserved_under_decay", "conserved_step",
    "one_d_step_factor", "warmup_regime",
    "lr_law", "toy_sharpness", "toy_max_lr",
    "predict_regime", "predict_regime_from_table", "predict_regime_on_data", "RegimePrediction",
    "relinearized_kernel_distance", "IllConditionedWarning",
    "KRRPrediction", "eigenlearning", "kernel_eigensystem", "optimal_ridge", "cost_of_overfitting", "overfitting_regime",
    "eigen_decay_exponent", "RFPrediction", "rf_risk", "rf_optimal_ridge",
    "qwem_target", "qwem_flow", "final_embeddings", "exact_step_times", "sigmoid_step_times",
    "ssl_prediction", "contrastive_matrix", "final_representation",
    "EscapeDirection", "optimal_escape_direction", "escape_time_exponent",
]

if TYPE_CHECKING:
    from .agf import AGFPrediction, agf, linear_agf
    from .atanasov import lr_law, toy_max_lr, toy_sharpness
    from .checks import IllConditionedWarning
    from .kernel import (KRRPrediction, cost_of_overfitting, eigen_decay_exponent, eigenlearning, kernel_eigensystem,
                         optimal_ridge, overfitting_regime)
    from .random_features import RFPrediction, rf_optimal_ridge, rf_risk
    from .saddle_escape import EscapeDirection, escape_time_exponent, optimal_escape_direction
    from .ssl import contrastive_matrix, final_representation, ssl_prediction
    from .word_embeddings import exact_step_times, final_embeddings, qwem_flow, qwem_target, sigmoid_step_times
    from .balance import (PairBalance, conserved_step, conserved_under_decay, decay_rate, neuron_imbalance,
                          one_d_step_factor, predict_balance, warmup_regime)
    from .one_d import laziness, mechanism, mechanism_case, one_d, one_d_inputs, phase, phase_exponent
    from .regime import RegimePrediction, predict_regime, predict_regime_from_table, predict_regime_on_data
    from .relinearized import relinearized_kernel_distance
    from .saxe import decoupled_init, half_time, learning_time, mode_strength, saxe, saxe_inputs
    from .single_neuron import (basin, interpolating_limit, interpolating_solution, potential, regime,
                                single_neuron, single_neuron_inputs)
    from .trajectory import Trajectory, merge, overlay, trajectory
    from .wide_linear import aligned_mode, isotropic, lambda_balanced, linear_inputs, linear_ntk
