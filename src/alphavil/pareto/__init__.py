"""Pareto multitask learning (MT2O): hypervolume, Pareto fronts and related utilities."""
