"""Tests for alphavil.pareto.hypervolume (hand values, moocore oracle, invariances, errors)."""

from __future__ import annotations

import numpy as np
import pytest

from alphavil.pareto.hypervolume import (
    hypervolume,
    hypervolume_contributions,
    nondominated_mask,
    reference_point,
)

REL = 1e-9


def _random_case(rng: np.random.Generator, m: int, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Random set with dominated points, exact duplicates and points outside the ref box."""
    n = int(rng.integers(1, n_max + 1))
    if rng.random() < 0.5:
        pts = rng.integers(0, 6, size=(n, m)).astype(float)  # many ties and duplicates
        ref = np.full(m, 5.0)
    else:
        pts = rng.random((n, m)) * 1.2  # some points beyond ref = 1
        ref = np.ones(m)
    pts = np.vstack([pts, pts[: int(rng.integers(0, 3))]])  # exact duplicates
    return pts, ref


# --- hand-computed values -------------------------------------------------------------------


def test_2d_staircase() -> None:
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0, rel=REL)


def test_1d() -> None:
    assert hypervolume([[3.0], [1.0], [2.0]], [5.0]) == pytest.approx(4.0, rel=REL)


@pytest.mark.parametrize("m", [3, 4, 5])
def test_single_point_is_box(m: int) -> None:
    point = np.arange(1.0, m + 1)
    ref = point + np.arange(2.0, m + 2)
    assert hypervolume(point[None, :], ref) == pytest.approx(np.prod(ref - point), rel=REL)


def test_two_boxes_3d_overlap() -> None:
    # Boxes [0,3]x[1,3]x[0,3] (vol 18) and [1,3]x[0,3]x[1,3] (vol 12) overlap in
    # [1,3]x[1,3]x[1,3] (vol 8): union = 22.
    assert hypervolume([[0, 1, 0], [1, 0, 1]], [3, 3, 3]) == pytest.approx(22.0, rel=REL)


def test_empty_is_zero() -> None:
    assert hypervolume(np.empty((0, 3)), [1, 1, 1]) == 0.0
    assert hypervolume([], [1, 1]) == 0.0


# --- oracle comparison ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("m", "n_max", "cases"), [(2, 40, 60), (3, 40, 60), (4, 30, 40), (5, 10, 25)]
)
def test_matches_moocore(m: int, n_max: int, cases: int) -> None:
    moocore = pytest.importorskip("moocore")
    rng = np.random.default_rng(100 + m)
    checked = 0
    for _ in range(cases):
        pts, ref = _random_case(rng, m, n_max)
        if not (pts < ref).all(axis=1).any():
            continue
        expected = moocore.hypervolume(pts, ref=ref)
        assert hypervolume(pts, ref) == pytest.approx(expected, rel=REL)
        checked += 1
    assert checked > cases // 2


@pytest.mark.parametrize("m", [2, 3, 4])
def test_maximize_matches_moocore(m: int) -> None:
    moocore = pytest.importorskip("moocore")
    rng = np.random.default_rng(7 + m)
    for _ in range(15):
        pts = rng.random((int(rng.integers(1, 30)), m))
        ref = np.full(m, -0.1)
        expected = moocore.hypervolume(-pts, ref=-ref)
        assert hypervolume(pts, ref, maximize=True) == pytest.approx(expected, rel=REL)
        mixed = [bool(i % 2) for i in range(m)]
        ref_mixed = np.where(mixed, -0.1, 1.1)
        expected = moocore.hypervolume(pts, ref=ref_mixed, maximise=mixed)
        assert hypervolume(pts, ref_mixed, maximize=mixed) == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_contributions_match_leave_one_out(m: int) -> None:
    moocore = pytest.importorskip("moocore")
    rng = np.random.default_rng(30 + m)
    checked = 0
    for _ in range(10):
        pts, ref = _random_case(rng, m, 15)
        if not (pts < ref).all(axis=1).any():
            continue
        total = moocore.hypervolume(pts, ref=ref)
        loo = [total - moocore.hypervolume(np.delete(pts, i, 0), ref=ref) for i in range(len(pts))]
        np.testing.assert_allclose(
            hypervolume_contributions(pts, ref), loo, rtol=REL, atol=1e-12 * total
        )
        checked += 1
    assert checked >= 5


def test_nondominated_mask_matches_moocore() -> None:
    moocore = pytest.importorskip("moocore")
    rng = np.random.default_rng(3)
    for m in (2, 3, 4):
        pts = rng.integers(0, 4, size=(40, m)).astype(float)
        expected = moocore.is_nondominated(pts, keep_weakly=False)
        np.testing.assert_array_equal(nondominated_mask(pts), expected)


# --- invariances ----------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 4])
def test_invariances(m: int) -> None:
    rng = np.random.default_rng(50 + m)
    pts = rng.random((25, m))
    ref = np.full(m, 1.1)
    hv = hypervolume(pts, ref)
    assert hv > 0
    assert hypervolume(pts[rng.permutation(len(pts))], ref) == pytest.approx(hv, rel=REL)
    dominated = pts[0] + 0.01  # dominated by pts[0]
    assert hypervolume(np.vstack([pts, dominated]), ref) == pytest.approx(hv, rel=REL)
    shift = rng.normal(size=m) * 10
    assert hypervolume(pts + shift, ref + shift) == pytest.approx(hv, rel=1e-8)
    scale = np.ones(m)
    scale[m - 1] = 3.5
    assert hypervolume(pts * scale, ref * scale) == pytest.approx(3.5 * hv, rel=REL)


def test_nondominated_mask_keeps_first_duplicate() -> None:
    pts = [[1, 2], [2, 1], [1, 2], [2, 2], [0, 3]]
    np.testing.assert_array_equal(nondominated_mask(pts), [True, True, False, False, True])
    np.testing.assert_array_equal(
        nondominated_mask(pts, maximize=True), [False, False, False, True, True]
    )


# --- errors and warnings --------------------------------------------------------------------


def test_ref_dominated_by_no_point_warns() -> None:
    with pytest.warns(RuntimeWarning, match="dominated by no point"):
        assert hypervolume([[1, 1], [0, 3]], [1, 2]) == 0.0


def test_points_outside_box_ignored_without_warning() -> None:
    assert hypervolume([[0, 0], [5, 0]], [1, 1]) == pytest.approx(1.0, rel=REL)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="points contain NaN or inf at row 1"):
        hypervolume([[0, 0], [bad, 0]], [1, 1])
    with pytest.raises(ValueError, match="ref contains NaN or inf"):
        hypervolume([[0, 0]], [1, bad])


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="must agree on the number of objectives"):
        hypervolume([[0, 0]], [1, 1, 1])
    with pytest.raises(ValueError, match="2-D"):
        hypervolume([0, 0], [1, 1])
    with pytest.raises(ValueError, match="1-D"):
        hypervolume([[0, 0]], [[1, 1]])
    with pytest.raises(ValueError, match="maximize"):
        hypervolume([[0, 0]], [1, 1], maximize=[True, False, True])


# --- reference point ------------------------------------------------------------------------


@pytest.mark.parametrize("maximize", [False, True, [True, False, False]])
def test_reference_point_dominated_by_front(maximize: bool | list[bool]) -> None:
    rng = np.random.default_rng(11)
    pts = rng.random((30, 3))
    pts[:, 1] = 0.5  # a constant objective exercises the absolute-margin fallback
    ref = reference_point(pts, maximize=maximize)
    sign = np.where(np.broadcast_to(maximize, 3), -1.0, 1.0)
    front = pts[nondominated_mask(pts, maximize=maximize)]
    assert ((front * sign) < (ref * sign)).all()
    assert hypervolume(pts, ref, maximize=maximize) > 0


def test_reference_point_value() -> None:
    np.testing.assert_allclose(reference_point([[1, 3], [2, 2], [3, 1], [5, 5]]), [3.4, 3.4])
    with pytest.raises(ValueError, match="margin"):
        reference_point([[1, 1]], margin=0.0)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_nondominated_mask_matches_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    pts = rng.integers(0, 4, size=(60, m)).astype(float)
    expected = [
        not any(
            (pts[j] <= pts[i]).all() and ((pts[j] < pts[i]).any() or j < i) for j in range(len(pts))
        )
        for i in range(len(pts))
    ]
    np.testing.assert_array_equal(nondominated_mask(pts), expected)
    assert nondominated_mask(np.empty((0, m))).shape == (0,)


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_fast_backend_equals_the_exact_one_on_random_sets(m: int) -> None:
    pytest.importorskip("moocore")
    rng = np.random.default_rng(7 + m)
    checked = 0
    for _ in range(30):
        pts, ref = _random_case(rng, m, 25 if m < 5 else 10)
        if not (pts < ref).all(axis=1).any():
            continue  # HV 0 with a warning, tested elsewhere
        maximize = bool(rng.random() < 0.3)
        if maximize:
            pts, ref = -pts, -ref
        exact = hypervolume(pts, ref, maximize=maximize, backend="exact")
        fast = hypervolume(pts, ref, maximize=maximize, backend="moocore")
        assert fast == pytest.approx(exact, rel=1e-12, abs=1e-15)
        assert hypervolume(pts, ref, maximize=maximize) == fast  # auto = moocore here
        checked += 1
    assert checked >= 15


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="backend"):
        hypervolume([[0.0, 0.0]], [1.0, 1.0], backend="wfg")
