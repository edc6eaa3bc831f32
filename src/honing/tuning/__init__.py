"""Hyperparameter and architecture search on Optuna (``honing tune``).

space (recipe search space → Optuna distributions), defaults (a space per model type), objective
(one trial: train and score a sampled recipe, reporting for pruning), study (storage, samplers,
pruners, workers, budget, resume), search (run a study), results (leaderboard, best recipe).
"""
