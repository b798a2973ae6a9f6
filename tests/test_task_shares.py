"""ShareSGD: torch.optim.SGD on the summed gradients, with each task's share tracked."""

from __future__ import annotations

import pytest
import torch

from alphavil.task_shares import ShareAdam, ShareSGD, share_optimizer

SETTINGS = [
    {"momentum": 0.0},
    {"momentum": 0.9},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.5, "dampening": 0.3},
    {"momentum": 0.9, "weight_decay": 0.01},
]


def _grads(gen: torch.Generator, shapes: list[tuple[int, ...]], n_tasks: int, step: int):
    out = []
    for t in range(n_tasks):
        row = []
        for j, s in enumerate(shapes):
            # task t has no gradient for parameter j on some steps (e.g. another task's head)
            missing = (t + j + step) % 3 == 0 and t > 0
            row.append(None if missing else torch.randn(s, generator=gen, dtype=torch.float64))
        out.append(row)
    return out


@pytest.mark.parametrize("kw", SETTINGS)
def test_matches_torch_sgd_on_the_sum_and_shares_add_up(kw):
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,), (2, 2)]
    ours = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    ref = [p.clone().requires_grad_(True) for p in ours]
    start = [p.clone() for p in ours]
    opt = torch.optim.SGD(ref, lr=0.1, **kw)
    share = ShareSGD(ours, 3, lr=0.1, **kw)
    for step in range(6):
        grads = _grads(gen, shapes, 3, step)
        for j, p in enumerate(ref):
            p.grad = sum(g[j] for g in grads if g[j] is not None)
        opt.step()
        share.step(grads)
    for p, r, s0, j in zip(ours, ref, start, range(3), strict=True):
        torch.testing.assert_close(p, r.detach(), rtol=0, atol=1e-12)
        torch.testing.assert_close(
            sum(share.shares[t][j] for t in range(3)), p - s0, atol=1e-12, rtol=0
        )


def test_one_task_is_plain_sgd_and_its_share_is_the_whole_update():
    p = torch.tensor([1.0, -2.0], dtype=torch.float64)
    share = ShareSGD([p], 1, lr=0.5, momentum=0.5)
    share.step([[torch.tensor([1.0, 1.0], dtype=torch.float64)]])  # buf = g; p -= 0.5 g
    share.step([[torch.tensor([0.0, 2.0], dtype=torch.float64)]])  # buf = 0.5 buf + g
    torch.testing.assert_close(
        p, torch.tensor([1.0 - 0.5 - 0.25, -2.0 - 0.5 - 1.25], dtype=torch.float64)
    )
    torch.testing.assert_close(
        share.shares[0][0], torch.tensor([-0.75, -1.75], dtype=torch.float64)
    )


def test_weight_decay_is_the_decay_tasks_share():
    p = torch.tensor([2.0], dtype=torch.float64)
    share = ShareSGD([p], 2, lr=0.1, weight_decay=0.5, decay_task=1)
    share.step([[torch.tensor([1.0], dtype=torch.float64)], [None]])
    torch.testing.assert_close(share.shares[0][0], torch.tensor([-0.1], dtype=torch.float64))
    torch.testing.assert_close(
        share.shares[1][0], torch.tensor([-0.1], dtype=torch.float64)
    )  # 0.1·0.5·2


def test_parameter_without_any_gradient_is_left_alone():
    p, q = torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    share = ShareSGD([p, q], 2, lr=0.1, momentum=0.9)
    g = torch.ones(2, dtype=torch.float64)
    share.step([[g, g], [g, None]])
    share.step([[g, None], [None, None]])  # q has no gradient: no momentum step either
    torch.testing.assert_close(q, torch.full((2,), 1.0 - 0.1, dtype=torch.float64))  # one step only


def test_scale_state_and_resume_continue_exactly():
    gen = torch.Generator().manual_seed(1)
    a = [torch.randn(4, generator=gen, dtype=torch.float64)]
    b = [a[0].clone()]
    one, two = ShareSGD(a, 2, lr=0.1, momentum=0.9), ShareSGD(b, 2, lr=0.1, momentum=0.9)
    grads = [[torch.randn(4, generator=gen, dtype=torch.float64)] for _ in range(2)]
    one.step(grads)
    two.step(grads)
    one.scale_state([1.0, 0.0])  # task 1's update rejected: its momentum is gone
    assert torch.count_nonzero(one.buffers[1][0]) == 0
    two.scale_state([1.0, 0.0])
    restored = ShareSGD(b, 2, lr=0.1, momentum=0.9)
    restored.load_state_dict(two.state_dict())
    more = [[torch.randn(4, generator=gen, dtype=torch.float64)] for _ in range(2)]
    one.step(more)
    restored.step(more)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_tasks": 0, "lr": 0.1}, "at least one task"),
        ({"n_tasks": 2, "lr": 0.0}, "lr > 0"),
        ({"n_tasks": 2, "lr": 0.1, "decay_task": 2}, "out of range"),
        ({"n_tasks": 2, "lr": 0.1, "nesterov": True}, "Nesterov"),
    ],
)
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        ShareSGD([torch.zeros(1)], **kw)


def test_wrong_number_of_gradient_rows_is_refused():
    share = ShareSGD([torch.zeros(1)], 2, lr=0.1)
    with pytest.raises(ValueError, match="2 tasks"):
        share.step([[None]])


ADAM = [
    ("Adam", {}),
    ("Adam", {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01}),
    ("AdamW", {}),
    ("AdamW", {"weight_decay": 0.1, "lr": 0.01}),
]


@pytest.mark.parametrize(("name", "kw"), ADAM)
def test_adam_matches_torch_on_the_sum_and_shares_add_up(name, kw):
    gen = torch.Generator().manual_seed(2)
    shapes = [(3, 4), (5,), (2, 2)]
    ours = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    ref = [p.clone().requires_grad_(True) for p in ours]
    start = [p.clone() for p in ours]
    opt = getattr(torch.optim, name)(ref, **{"lr": 0.05, **kw})
    share = share_optimizer({"name": name, "lr": 0.05, **kw}, ours, 3, 0)
    assert isinstance(share, ShareAdam)
    for step in range(6):
        grads = _grads(gen, shapes, 3, step)
        for j, p in enumerate(ref):
            p.grad = sum(g[j] for g in grads if g[j] is not None)
        opt.step()
        share.step(grads)
    for j, (p, r, s0) in enumerate(zip(ours, ref, start, strict=True)):
        torch.testing.assert_close(p, r.detach(), rtol=0, atol=1e-12)
        total = sum(share.shares[t][j] for t in range(3))
        torch.testing.assert_close(total, p - s0, atol=1e-12, rtol=0)


def test_adam_resume_continues_exactly():
    gen = torch.Generator().manual_seed(3)
    a = [torch.randn(4, generator=gen, dtype=torch.float64)]
    b = [a[0].clone()]
    one = ShareAdam(a, 2, lr=0.01, weight_decay=0.1, decoupled=True)
    two = ShareAdam(b, 2, lr=0.01, weight_decay=0.1, decoupled=True)
    for _ in range(2):
        grads = [[torch.randn(4, generator=gen, dtype=torch.float64)] for _ in range(2)]
        one.step(grads)
        two.step(grads)
    one.scale_state([1.0, 0.5])
    two.scale_state([1.0, 0.5])
    restored = ShareAdam(b, 2, lr=0.01, weight_decay=0.1, decoupled=True)
    restored.load_state_dict(two.state_dict())
    more = [[torch.randn(4, generator=gen, dtype=torch.float64)] for _ in range(2)]
    one.step(more)
    restored.step(more)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"name": "RMSprop", "lr": 0.01}, "cannot be split into task shares; supported: SGD"),
        ({"name": "Adam", "lr": 0.01, "amsgrad": True}, "Adam options amsgrad"),
        ({"name": "SGD", "lr": 0.01, "maximize": True}, "SGD options maximize"),
    ],
)
def test_share_optimizer_refuses_what_it_cannot_split(spec, match):
    with pytest.raises(ValueError, match=match):
        share_optimizer(spec, [torch.zeros(1)], 2, 0)
