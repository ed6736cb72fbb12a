"""The contract every registered mixer keeps (DESIGN.md), driven by the registry itself.

A new mixer that registers itself is tested here without a line added: the bad
hyper-parameter to try comes from its own ``MixerInfo.bad_example`` (a test fails if it is
missing).
"""
import inspect
import re
from pathlib import Path

import pytest
import torch

from mixlib import bench, mixers

DIM = 64
NAMES = mixers.available()
# the few mixers whose defaults cannot take a 13×17 map get the size they need
KWARGS = {"relative_attention": dict(size=(13, 17))}


def mixer_parameters(name):
    return inspect.signature(mixers.mixer_class(name)).parameters


def make(name, **extra):
    torch.manual_seed(0)
    return mixers.build(name, DIM, **{**KWARGS.get(name, {}), **extra})


def test_the_design_names_are_registered():
    design = {"dwconv", "ddwconv", "idwconv", "window_attention", "neighborhood_attention",
              "relative_attention", "lka", "elsa", "gnconv", "global_filter", "pooling"}
    assert design <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shape_is_kept_on_an_odd_non_square_map(name):
    x = torch.randn(2, DIM, 13, 17)
    y = make(name)(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    mixer = make(name)
    x = torch.randn(2, DIM, 13, 17, requires_grad=True)
    mixer(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in mixer.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(13, 17), (16, 16)])
def test_multiply_adds_are_half_the_counted_flops(name, size):
    # the chapters' cost formulas, as the mixers give them, against torch's FLOP counter
    # (2 FLOPs per multiply-add; neither counts biases or elementwise products)
    mixer = make(name).eval()
    macs = mixer.multiply_adds(*size)
    flops = bench.forward_flops(mixer, torch.randn(2, DIM, *size))
    if macs is None:  # not multiply-adds (an FFT, a mean): its info declares the formula
        assert mixer.info.flops is not None and flops[mixer.info.flops.label] > 0
    else:
        assert 2 * 2 * macs == flops["total"]  # a batch of two
    with pytest.raises(ValueError, match="height"):
        mixer.multiply_adds(0, size[1])


@pytest.mark.parametrize("name, kwargs", [
    ("dwconv", dict(kernel_size=5, dilation=2)), ("ddwconv", dict(reduction=8)),
    ("idwconv", dict(groups=4, kernel_size=3)), ("lka", dict(kernel_size=14, dilation=2)),
    ("window_attention", dict(window_size=5, shift_size=2)),  # padded to 15×20, shifted
    ("neighborhood_attention", dict(kernel_size=5, dilation=2, border="zeros")),
    ("relative_attention", dict(size=(13, 17), dim_out=96)),
    ("elsa", dict(lam=1)), ("elsa", dict(gamma=0.0)), ("elsa", dict(group_width=8)),
    ("gnconv", dict(order=2, kernel_size=3)), ("gnconv", dict(order=3, global_size=(13, 17))),
])
def test_multiply_adds_follow_the_hyper_parameters(name, kwargs):
    mixer = make(name, **kwargs).eval()
    macs = mixer.multiply_adds(13, 17)
    flops = bench.forward_flops(mixer, torch.randn(1, DIM, 13, 17))
    if macs is None:  # gnConv with a global filter: FFTs, counted by formula
        assert flops["fft"] > 0
    else:
        assert 2 * macs == flops["total"]
    with pytest.raises(ValueError, match="width"):
        mixer.multiply_adds(13, 0)


@pytest.mark.parametrize("name", NAMES)
def test_train_and_eval(name):
    # with dropout where the mixer has it, so that ignoring eval() would show
    accepts = mixer_parameters(name)
    drops = {a: 0.5 for a in ("attn_drop", "proj_drop") if a in accepts}
    mixer = make(name, **drops)
    x = torch.randn(2, DIM, 9, 11)
    mixer.train()
    assert torch.isfinite(mixer(x)).all()
    if drops:
        assert not torch.equal(mixer(x), mixer(x))
    mixer.eval()
    with torch.no_grad():
        assert torch.equal(mixer(x), mixer(x))


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_on_cpu(name):
    mixer = make(name)
    x = torch.randn(2, DIM, 13, 17)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = mixer(x)
    assert y.shape == x.shape
    assert torch.isfinite(y.float()).all()


@pytest.mark.parametrize("name", NAMES)
def test_wrong_channels_and_rank_are_value_errors(name):
    mixer = make(name)
    with pytest.raises(ValueError, match=f"dim={DIM}"):
        mixer(torch.randn(2, DIM // 2, 13, 17))
    with pytest.raises(ValueError, match=re.escape("(B, C, H, W)")):
        mixer(torch.randn(DIM, 13, 17))


@pytest.mark.parametrize("name", [n for n in NAMES
                                  if hasattr(mixers.mixer_class(n), "aggregation_weights")])
def test_aggregation_weights_keep_the_contract_of_the_mixer(name):
    mixer = make(name)
    if name == "dwconv":  # static weights: x is not needed, and none is read
        assert mixer.aggregation_weights().shape == (1, DIM, 49, 1, 1)
        return
    with pytest.raises(ValueError, match=f"dim={DIM}"):
        mixer.aggregation_weights(torch.randn(2, DIM // 2, 13, 17))


@pytest.mark.parametrize("name", NAMES)
def test_bad_hyperparameters_name_the_argument(name):
    example = mixers.info(name).bad_example
    assert example, f"declare MixerInfo(bad_example=(argument, kwargs)) for {name}"
    argument, kwargs = example
    with pytest.raises(ValueError, match=argument):
        make(name, **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_a_misspelt_keyword_is_a_type_error(name):
    with pytest.raises(TypeError):
        make(name, kernal_size=3)


@pytest.mark.parametrize("name", NAMES)
def test_metadata_cites_the_bibliography(name):
    info = mixers.info(name)
    bib = (Path(__file__).resolve().parents[1] / "book" / "references.bib").read_text()
    assert info.neighbourhood and info.sharing and info.weights
    assert f"{{{info.paper}," in bib


def test_unknown_name():
    with pytest.raises(ValueError, match="'conv3x3'"):
        mixers.build("conv3x3", DIM)


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_batch_gives_an_empty_output(name):
    x = torch.randn(0, DIM, 13, 17)
    assert make(name)(x).shape == x.shape


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool])
def test_integer_and_bool_maps_are_refused_by_name(name, dtype):
    # some backends computed these in float, others failed inside torch
    with pytest.raises(ValueError, match=f"floating-point x, got dtype {dtype}"):
        make(name)(torch.ones(2, DIM, 9, 11, dtype=dtype))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "pooling"])  # pooling has no weights
def test_weights_on_another_device_are_refused_by_name(name):
    mixer = make(name).to("meta")  # the one other device a CPU-only machine has
    with pytest.raises(ValueError, match="x is on cpu but .* weights are on meta"):
        mixer(torch.randn(2, DIM, 9, 11))


@pytest.mark.parametrize("name,argument,value", [
    (n, a, v) for n in ("window_attention", "neighborhood_attention", "relative_attention", "elsa")
    for a in ("attn_drop", "proj_drop") for v in (1.5, -0.1, float("nan"))] + [
    ("elsa", "gamma", float("nan")), ("elsa", "qk_scale", float("inf")),
    # a zero scale silences the mixer: ELSA's generator sees a constant, gnConv's gates are 0
    ("elsa", "qk_scale", 0.0), ("gnconv", "scale", 0.0),
    ("gnconv", "scale", float("nan")), ("gnconv", "global_size", 0),
    ("gnconv", "global_size", 14.0), ("gnconv", "global_size", (14,)),
    ("global_filter", "size", None)])
def test_bad_float_hyperparameters_are_refused_at_construction(name, argument, value):
    # before: dropout 1.5 failed at the first training step, NaN scales built and output NaN
    with pytest.raises(ValueError, match=rf"{argument}(\[0\])? must be"):
        make(name, **{argument: value})


@pytest.mark.parametrize("name,kwargs,argument", [
    ("window_attention", dict(position_bias="no"), "position_bias"),
    ("neighborhood_attention", dict(position_bias=0), "position_bias"),
    # a string flag is truthy: "False" would have built the bias it names
    ("window_attention", dict(qkv_bias="False"), "qkv_bias must be True or False, got 'False'"),
    ("neighborhood_attention", dict(qkv_bias="no"), "qkv_bias must be True or False, got 'no'"),
    ("relative_attention", dict(qkv_bias=1), "qkv_bias must be True or False, got 1"),
    ("elsa", dict(qkv_bias="False"), "qkv_bias must be True or False, got 'False'"),
    ("dwconv", dict(bias="False"), "bias must be True or False, got 'False'"),
    # a 1×1 average is the pixel itself: the mixer's output would be 0
    ("pooling", dict(pool_size=1), "pool_size"),
    # an odd number of q channels for the GlobalLocalFilter, which halves them: named as
    # gnConv's arguments, not as the inner filter's dim
    ("gnconv", dict(dim=62, order=2, global_size=(7, 7)), "dim=62, order=2"),
    # a global filter does not use the kernel: a bad one is still a typo
    ("gnconv", dict(kernel_size=4, global_size=(7, 7)), "kernel_size"),
    ("elsa", dict(dim=2, num_heads=1), "dim=2")])  # ELSA's q and k get 2/3 of dim: none below 3
def test_arguments_that_were_taken_silently_are_named(name, kwargs, argument):
    kwargs = dict(kwargs)
    dim = kwargs.pop("dim", DIM)
    with pytest.raises(ValueError, match=re.escape(argument)):
        mixers.build(name, dim, **kwargs)


def test_ddw_names_a_training_batch_its_generators_batchnorm_cannot_take():
    mixer = make("ddwconv").train()
    with pytest.raises(ValueError, match=r"at least 2 images.*\(1, 64, 5, 5\)"):
        mixer(torch.randn(1, DIM, 5, 5))
    assert mixer.eval()(torch.randn(1, DIM, 5, 5)).shape == (1, DIM, 5, 5)


def test_neighborhood_attention_names_a_map_smaller_than_its_clamped_window():
    mixer = make("neighborhood_attention", kernel_size=5)
    with pytest.raises(ValueError, match=r"kernel_size=5, dilation=1\): .* 5 pixels, got an axis "
                                         r"of length 4, in x of shape \(1, 64, 4, 9\)"):
        mixer(torch.randn(1, DIM, 4, 9))
    assert make("neighborhood_attention", kernel_size=5, border="zeros")(torch.randn(1, DIM, 4, 9)).shape == (1, DIM, 4, 9)


def test_neighborhood_attention_checks_an_implementation_set_after_construction():
    # chapter 3 and the benchmarks switch a built mixer's path; a typo used to run "auto",
    # and "flex" on border="zeros" computed NATTEN's clamped windows instead
    mixer = make("neighborhood_attention", kernel_size=3, border="zeros")
    with pytest.raises(ValueError, match="implementation must be one of .* got 'aggreagte'"):
        mixer.implementation = "aggreagte"
    with pytest.raises(ValueError, match="border='zeros' needs another implementation"):
        mixer.implementation = "flex"
    assert mixer.implementation == "auto"  # a refused value leaves the mixer as it was
    mixer.implementation = "dense"
    assert mixer.implementation == "dense"
    make("neighborhood_attention", kernel_size=3).implementation = "flex"  # clamp: allowed
