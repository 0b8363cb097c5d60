"""What differs between ComfyUI versions, checked in-process against the tree under test (0.3.75 or 0.33).

The same assertions hold on every version; where a version lacks a feature (0.3.75: no ``txt_ids_dims``, no
``cached_patcher_init``, no ``is_oom``) the check compares with what core itself does there.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from comfy_tree import comfy_flux, import_comfy
from tiny_models import tiny_flux_bfl_file, tiny_flux_diffusers_file

pytestmark = pytest.mark.comfy


@pytest.fixture(scope="module")
def comfy():
    package = import_comfy()
    import comfy.sd  # noqa: F401 - loads the model-loading path the tests compare against

    return package


def _has_txt_ids_dims() -> bool:
    from comfy.ldm.flux.model import FluxParams

    return "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}


def _tiny_flux(**extra: object):
    torch.manual_seed(0)
    model = comfy_flux(
        in_channels=4,
        out_channels=4,
        vec_in_dim=8,
        context_in_dim=8,
        hidden_size=32,
        mlp_ratio=2.0,
        num_heads=2,
        depth=1,
        depth_single_blocks=1,
        axes_dim=[4, 6, 6],
        theta=10_000,
        patch_size=2,
        qkv_bias=True,
        guidance_embed=False,
        dtype=torch.float32,
        **extra,
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


# --- RFR and models whose text ids sit on the spatial axes ------------------------------------------------


def test_grid_reading_rfr_is_refused_where_text_ids_take_the_spatial_axes(comfy) -> None:
    from sr4k.nodes.op4ksr_patch import check_text_axes
    from sr4k.op4ksr_core.embedder import grid_from_ids
    from sr4k.op4ksr_core.rfr import RFRConfig

    for mode in (
        "ntk",
        "yarn",
        "dype",
        "scale",
        "none",
    ):  # FLUX.1 (text ids all zero): every mode, every version
        check_text_axes(_tiny_flux(), RFRConfig(mode=mode))
    if not _has_txt_ids_dims():
        pytest.skip("this ComfyUI has no txt_ids_dims (0.3.75): text ids are always zero there")
    model = _tiny_flux(txt_ids_dims=[1, 2])  # LongCat-Image / Ovis placement
    # Why: the ids the model hands its embedder put the 20 text tokens at rows/cols 0..19, so the grid NTK, YaRN
    # and DyPE read is 20 x 20, not the image's 4 x 4 tokens.
    seen: list[torch.Tensor] = []
    stock = model.pe_embedder
    model.pe_embedder = type(
        "Spy", (torch.nn.Module,), {"forward": lambda self, ids: seen.append(ids) or stock(ids)}
    )()
    with torch.no_grad():
        model(torch.randn(1, 4, 8, 8), torch.tensor([0.5]), torch.randn(1, 20, 8), y=torch.randn(1, 8))
    assert grid_from_ids(seen[0]) == (20.0, 20.0)
    for mode in ("ntk", "yarn", "dype"):
        with pytest.raises(
            ValueError, match=rf"rfr_mode '{mode}' cannot be used.*txt_ids_dims=\[1, 2\].*'scale'"
        ):
            check_text_axes(model, RFRConfig(mode=mode))
    check_text_axes(model, RFRConfig(mode="scale", alpha=2.0))  # grid-independent: exact
    check_text_axes(model, RFRConfig(mode="none"))
    check_text_axes(_tiny_flux(txt_ids_dims=[3]), RFRConfig(mode="ntk"))  # a non-spatial axis is harmless


# --- out of memory and cancel -----------------------------------------------------------------------------


def test_oom_is_recognised_as_this_comfyui_recognises_it(comfy) -> None:
    import comfy.model_management as mm

    from sr4k.nodes.runtime import is_oom
    from sr4k.srkit.oom import is_oom as torch_is_oom

    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    for err in (
        oom,
        ValueError("bad input"),
        RuntimeError("shape mismatch"),
        mm.InterruptProcessingException(),
    ):
        assert is_oom(err) == torch_is_oom(err) == isinstance(err, torch.cuda.OutOfMemoryError)
    if hasattr(torch, "AcceleratorError"):
        accel = torch.AcceleratorError("CUDA error: out of memory")
        assert torch_is_oom(accel) and not torch_is_oom(
            torch.AcceleratorError("CUDA error: misaligned address")
        )
        # ComfyUI 0.33 counts it as OOM (model_management.is_oom); 0.3.75 knows only OOM_EXCEPTION.
        assert is_oom(accel) == (mm.is_oom(accel) if hasattr(mm, "is_oom") else True)


def test_a_cancel_stops_op4ksr_and_inspect_before_their_first_stage(comfy) -> None:
    import comfy.model_management as mm

    from sr4k.nodes.inspect_artifacts import InspectArtifacts
    from sr4k.nodes.op4ksr_upscale import upscale_one

    image = torch.rand(1, 96, 96, 3)
    for run in (
        lambda: upscale_one(None, None, image.movedim(-1, 1), (192, 192), [], None, None),
        lambda: InspectArtifacts.execute(image, 16),
    ):
        mm.interrupt_current_processing(True)
        try:
            with pytest.raises(mm.InterruptProcessingException):
                run()
        finally:
            mm.interrupt_current_processing(False)


# --- OP4KSR_LoadModel builds what core UNETLoader builds -------------------------------------------------


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in (
        "diffusion_model.img_in.weight",
        "diffusion_model.double_blocks.0.img_attn.qkv.weight",
        "diffusion_model.final_layer.linear.weight",
    ):
        assert torch.equal(sa[k], sb[k]), k


def test_loader_model_is_the_kind_unetloader_gives(comfy) -> None:
    from sr4k.nodes.op4ksr_loaders import load_flux_model

    path = str(tiny_flux_bfl_file())
    core = comfy.sd.load_diffusion_model(path, model_options={})  # exactly what UNETLoader.load_unet calls
    ours = load_flux_model(path, "default")
    assert type(ours) is type(core) and type(ours.model) is type(core.model)
    assert ours.model.get_dtype() == core.model.get_dtype()
    # 0.33: (load_diffusion_model, (path, {})), the factory dynamic VRAM / multi-GPU rebuild from; 0.3.75: none.
    assert getattr(ours, "cached_patcher_init", None) == getattr(core, "cached_patcher_init", None)
    _same_weights(ours.model, core.model)


def test_diffusers_layout_model_can_be_rebuilt_by_core(comfy) -> None:
    from sr4k.nodes.op4ksr_loaders import load_flux_model

    bfl = comfy.sd.load_diffusion_model(str(tiny_flux_bfl_file()), model_options={})
    ours = load_flux_model(str(tiny_flux_diffusers_file()), "default")
    assert type(ours) is type(bfl) and type(ours.model) is type(bfl.model)
    _same_weights(ours.model, bfl.model)
    if "force_deepcopy" not in inspect.signature(type(ours).clone).parameters:
        assert not hasattr(bfl, "cached_patcher_init") and not hasattr(ours, "cached_patcher_init")
        return  # 0.3.75: nothing in core rebuilds a model from its loader
    assert ours.cached_patcher_init == (load_flux_model, (str(tiny_flux_diffusers_file()), "default"))
    # What core does for a non-dynamic delegate or a deep copy: call the factory with disable_dynamic=True.
    copy = ours.clone(force_deepcopy=True)
    assert copy.model is not ours.model
    _same_weights(copy.model, bfl.model)
