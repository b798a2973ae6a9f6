from __future__ import annotations

import copy

import pytest
import torch
from pareto_helpers import TASKS, tiny_data, tiny_model
from torch import nn

from alphavil.pareto.population import Population, check_elementwise, mtgd_step
from alphavil.pareto.transfer import transfer_matrix
from alphavil.pareto.weights import evenly_spaced

OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
}


def _batches(n: int = 3) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    data = tiny_data()
    g = torch.Generator().manual_seed(1)
    it = data.train_batches(["a", "b"], batch_size=16, generator=g)
    return [next(it) for _ in range(n)]


def _reference_step(
    models: list[nn.Module],
    opts: list[torch.optim.Optimizer],
    batch: tuple[torch.Tensor, dict[str, torch.Tensor]],
    prefs: torch.Tensor,
    mixing: torch.Tensor | None,
) -> None:
    """K separate modules: gradient at the pre-mix θ_k, mix, step (the MSGD order)."""
    x, y = batch
    for m, opt, pref in zip(models, opts, prefs, strict=True):
        opt.zero_grad()
        out = m(x)
        sum(pref[i] * t.loss(out[t.name], y[t.name]) for i, t in enumerate(TASKS)).backward()
    if mixing is not None:
        with torch.no_grad():
            snap = [[p.detach().clone() for p in m.parameters()] for m in models]
            for k, m in enumerate(models):
                for i, p in enumerate(m.parameters()):
                    p.copy_(sum(mixing[k, j] * snap[j][i] for j in range(len(models))))
    for opt in opts:
        opt.step()


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("vectorize", [True, False])
@pytest.mark.parametrize("beta", [0.0, 0.2])
def test_population_step_equals_a_loop_over_k_models(
    opt_name: str, vectorize: bool, beta: float
) -> None:
    prefs = evenly_spaced(4)
    models = [tiny_model() for _ in range(4)]
    reference = copy.deepcopy(models)
    ref_opts = [OPTIMIZERS[opt_name](m.parameters()) for m in reference]
    pop = Population(models, TASKS, vectorize=vectorize)
    opt = OPTIMIZERS[opt_name](pop.parameters())
    mixing = transfer_matrix(prefs, beta, 2) if beta else None
    for batch in _batches():
        losses = mtgd_step(pop, opt, batch[0], batch[1], prefs, mixing=mixing)
        _reference_step(reference, ref_opts, batch, prefs, mixing)
        assert losses.shape == (4, 2)
    for k, m in enumerate(reference):
        for name, p in m.named_parameters():
            torch.testing.assert_close(pop.params[name][k], p, rtol=0, atol=1e-12)


def test_losses_and_sums_match_the_modules() -> None:
    models = [tiny_model() for _ in range(3)]
    pop = Population(models, TASKS)
    x, y = _batches(1)[0]
    losses = pop.losses(x, y)
    sums, correct = pop.sums(x, y)
    for k, m in enumerate(models):
        out = m(x)
        for i, t in enumerate(TASKS):
            torch.testing.assert_close(losses[k, i], t.loss(out[t.name], y[t.name]))
            torch.testing.assert_close(sums[k, i], t.loss_sum(out[t.name], y[t.name]))
            assert correct[k, i] == t.correct(out[t.name], y[t.name])


def test_task_jacobian_and_set_grads_roundtrip() -> None:
    models = [tiny_model() for _ in range(2)]
    pop = Population(models, TASKS)
    x, y = _batches(1)[0]
    losses = pop.losses(x, y)
    jac = pop.task_jacobian(losses)  # (K, m, P)
    n_params = sum(p[0].numel() for p in pop.parameters())
    assert jac.shape == (2, 2, n_params)
    out = models[1](x)
    grads = torch.autograd.grad(
        TASKS[0].loss(out["a"], y["a"]), list(models[1].parameters()), allow_unused=True
    )
    flat = torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(grads, models[1].parameters(), strict=True)
        ]
    )
    torch.testing.assert_close(jac[1, 0], flat)
    pop.set_grads(jac[:, 0])
    assert pop.parameters()[0].grad is not None


def test_mix_buffers_export_and_state_dict() -> None:
    models = [nn.BatchNorm1d(3).double() for _ in range(3)]
    for i, m in enumerate(models):
        m.running_mean.fill_(float(i))
    pop = Population(models, TASKS)
    pop.mix_(transfer_matrix(evenly_spaced(3), 0.5, 2))
    assert pop.buffers["running_mean"][1, 0].item() == pytest.approx(1.0)
    assert pop.buffers["running_mean"][0, 0].item() == pytest.approx(
        0.5
    )  # all to model 1: cos((0,1),(1,0)) = 0
    assert pop.buffers["num_batches_tracked"].dtype == torch.long
    state = pop.state_dict()
    fresh = Population([nn.BatchNorm1d(3).double() for _ in range(3)], TASKS)
    fresh.load_state_dict(state)
    out = fresh.export(0, nn.BatchNorm1d(3).double())
    torch.testing.assert_close(out.running_mean, state["buffers"]["running_mean"][0])


def test_coupling_optimizers_are_rejected() -> None:
    check_elementwise("Adam")
    with pytest.raises(ValueError, match="couple"):
        check_elementwise("LBFGS")


def _dropout_bn_model() -> nn.Module:
    from alphavil.models.multihead import MultiHeadModel

    enc = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5))
    heads = {t.name: nn.Linear(8, t.num_outputs) for t in TASKS}
    return MultiHeadModel(enc, heads).double()


def test_evaluation_runs_in_eval_mode() -> None:
    """Dropout off and batch norm on frozen running statistics in every evaluation, as
    ``model.eval()``; training still uses train mode (running statistics move)."""
    torch.manual_seed(0)
    models = [_dropout_bn_model() for _ in range(3)]
    pop = Population(models, TASKS, vectorize=False)
    batches = _batches(3)
    for x, y in batches:  # a few training forwards: running statistics become non-trivial
        pop.losses(x, y)
    before = {n: b.clone() for n, b in pop.buffers.items()}
    assert not torch.equal(before["encoder.1.running_mean"], torch.zeros(3, 8, dtype=torch.float64))
    first = pop.evaluate(iter(batches))
    second = pop.evaluate(iter(batches))
    torch.testing.assert_close(first[0], second[0], rtol=0, atol=0)  # deterministic
    for n, b in pop.buffers.items():  # evaluation data never moves the running statistics
        assert torch.equal(b, before[n]), n
    x, y = batches[0]
    sums, _ = pop.sums(x, y)
    for k in range(3):
        module = pop.export(k, _dropout_bn_model()).eval()
        out = module(x)
        for i, t in enumerate(TASKS):
            torch.testing.assert_close(sums[k, i], t.loss_sum(out[t.name], y[t.name]))
    pop.losses(x, y)  # training forward: train mode again, statistics move
    assert not torch.equal(pop.buffers["encoder.1.running_mean"], before["encoder.1.running_mean"])


def test_project_clips_into_the_box() -> None:
    from alphavil.pareto.problems import PointModel

    pop = Population([PointModel(4, "zdt1") for _ in range(2)], TASKS)
    with torch.no_grad():
        pop.params["x"].add_(torch.tensor([[-2.0], [2.0]]))
    pop.project_()
    assert pop.params["x"][0].max() == 0.0 and pop.params["x"][1].min() == 1.0
