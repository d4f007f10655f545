"""Transformers backend on a tiny random Qwen3-VL: real processor, chat template and generate."""
import dataclasses
import hashlib
import os

import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('transformers')

from sole_r1_ros.reward import (  # noqa: E402 - after the optional-dependency skips
    ProgressQuery, protocol, RewardConfig, RewardEngine, TransformersConfig)
from sole_r1_ros.reward.backends import qwen  # noqa: E402
from sole_r1_ros.reward.backends.base import PreparedRequest, SamplingSettings  # noqa: E402
from sole_r1_ros.reward.backends.transformers_backend import (  # noqa: E402
    bucket_size, TransformersBackend, warmup_request)

_NO_WARMUP = TransformersConfig(device='cpu', warmup='off')


@pytest.fixture(scope='module')
def tiny():
    """One tiny backend for the module; building it is cheap, importing torch is not."""
    config = RewardConfig(model='tiny-random', transformers=_NO_WARMUP)
    return TransformersBackend.from_config(config)


def _request(picture=0, goal='Close the drawer', previous=0, wrist=True, **sampling):
    rng = np.random.default_rng(picture)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    composite = protocol.build_composite(*frames[:3], *(frames[3:] if wrist else [None] * 3))
    settings = SamplingSettings(**{'temperature': 0.0, 'max_new_tokens': 6, **sampling})
    return PreparedRequest(protocol.to_model_image(composite),
                           protocol.build_messages(goal, previous, external_only=not wrist),
                           settings)


def test_chat_template_renders_like_qwen3_vl(tiny):
    messages = protocol.build_messages('Close the drawer', 5)
    system, user = protocol.message_texts(messages)
    expected = (f'<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n'
                f'<|vision_start|><|image_pad|><|vision_end|>{user}<|im_end|>\n'
                '<|im_start|>assistant\n')
    rendered = tiny._processor.apply_chat_template(messages, tokenize=False,
                                                   add_generation_prompt=True)
    assert rendered == expected


def test_image_processor_has_the_checkpoint_settings_set_in_code(tiny):
    processor = tiny._processor.image_processor
    assert list(processor.image_mean) == [0.5] * 3 and list(processor.image_std) == [0.5] * 3
    assert int(processor.resample) == 3
    assert (processor.patch_size, processor.merge_size, processor.temporal_patch_size) == \
        (16, 2, 2)
    assert (processor.size['shortest_edge'], processor.size['longest_edge']) == \
        (65536, 16777216)
    assert tiny._processor.tokenizer.padding_side == 'left'
    # On a CPU 'auto' leaves out every GPU speed-up.
    assert (tiny._static_cache, tiny._compile, tiny._warm) == (False, False, False)


def test_model_image_is_888_visual_tokens(tiny):
    request = _request()
    inputs = tiny._encode([request])
    assert inputs['image_grid_thw'].tolist() == [[1, 48, 74]]
    image_pad = tiny._processor.tokenizer.convert_tokens_to_ids('<|image_pad|>')
    assert int((inputs['input_ids'] == image_pad).sum()) == 888


def test_batched_greedy_generate_is_ordered_and_repeatable(tiny):
    requests = [_request(picture=2, goal='Open the top drawer of the cabinet', previous=-35),
                _request(picture=3, wrist=False)]
    first = tiny.generate(requests)
    second = tiny.generate(requests)
    assert len(first) == 2
    assert [r.text for r in first] == [r.text for r in second]
    assert all(r.text and 1 <= r.completion_tokens <= 6 and r.latency_s > 0 for r in first)


def test_seed_makes_sampling_reproducible_without_touching_global_rng(tiny):
    request = _request(temperature=1.0, max_new_tokens=6, seed=3)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = tiny.generate([request])[0].text
    assert torch.equal(torch.rand(1), expected_next)
    b = tiny.generate([request])[0].text
    assert a == b


def test_ignore_eos_generates_exactly_max_new_tokens():
    model, processor = qwen.build_tiny()
    backend = TransformersBackend(model, processor, 'tiny-random',
                                  dataclasses.replace(_NO_WARMUP, ignore_eos=True))
    [reply] = backend.generate([_request(max_new_tokens=5)])
    assert reply.completion_tokens == 5


def test_static_cache_batches_pad_to_bucket_and_match_dynamic_cache(tiny):
    options = TransformersConfig(device='cpu', static_cache='on', compile='off', warmup='off',
                                 batch_buckets=(2, 8), prompt_pad_multiple=64)
    static = TransformersBackend(tiny._model, tiny._processor, 'tiny-random', options)
    requests = [_request(picture=4)]
    assert static._encode(requests)['input_ids'].shape[1] % 64 == 0
    replies = static.generate(requests)  # runs as a batch of 2, the smallest bucket
    assert len(replies) == 1
    assert replies[0].text == tiny.generate(requests)[0].text


def test_warmup_runs_once_per_bucket_at_load(caplog):
    options = TransformersConfig(device='cpu', static_cache='on', compile='off', warmup='on',
                                 batch_buckets=(1,))
    with caplog.at_level('INFO', logger='sole_r1_ros.reward.backends.transformers_backend'):
        TransformersBackend.from_config(RewardConfig(model='tiny-random', max_new_tokens=2,
                                                     transformers=options))
    assert [r.getMessage().split(' took')[0] for r in caplog.records] == [
        'tiny-random warm-up at batch 1']


def test_the_warm_up_prompt_is_longer_than_a_long_real_one(tiny):
    """The static cache keeps the largest prompt it has seen.

    A real prompt longer than the warm-up's recompiled the decode step on a live query (a
    minute on the GPU).
    """
    options = TransformersConfig(device='cpu', static_cache='on', compile='off', warmup='off',
                                 batch_buckets=(1,), prompt_pad_multiple=64)
    static = TransformersBackend(tiny._model, tiny._processor, 'tiny-random', options)
    sampling = SamplingSettings(temperature=0.0, max_new_tokens=8)
    long_goal = ('pick up the red cube from the table, carry it across to the far side of the '
                 'workspace and place it gently into the green bowl left of the blue plate')
    real = _request(goal=long_goal, previous=-35)
    assert (static._encode([warmup_request(sampling)])['input_ids'].shape[1]
            >= static._encode([real])['input_ids'].shape[1] + 64)   # a 64-token margin


def test_bucket_size_picks_smallest_bucket_that_fits():
    assert [bucket_size(n, (1, 8, 32)) for n in (1, 2, 8, 9, 32, 40)] == [1, 8, 8, 32, 32, 32]


def _tree_digest(folder):
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(path.encode())
            with open(path, 'rb') as stream:
                digest.update(stream.read())
            digest.update(str(os.stat(path).st_mtime_ns).encode())
    return digest.hexdigest()


def test_local_checkpoint_loads_offline_and_is_left_untouched(tmp_path, tiny):
    folder = tmp_path / 'SOLE-R1-tiny'
    tiny._model.save_pretrained(folder)
    tiny._processor.tokenizer.save_pretrained(folder)
    before = _tree_digest(folder)
    backend = TransformersBackend.from_config(
        RewardConfig(model=str(folder), transformers=_NO_WARMUP))
    assert backend.model_id == 'SOLE-R1-tiny'
    request = _request(picture=8)
    assert backend.generate([request])[0].text == tiny.generate([request])[0].text
    assert list(backend._processor.image_processor.image_mean) == [0.5, 0.5, 0.5]
    assert _tree_digest(folder) == before


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='no Qwen3-VL checkpoint'):
        TransformersBackend.from_config(RewardConfig(model=str(tmp_path / 'nope')))
    (tmp_path / 'config.json').write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="'bert' model"):
        TransformersBackend.from_config(RewardConfig(model=str(tmp_path)))
    with pytest.raises(ValueError, match='model must name'):
        TransformersBackend.from_config(RewardConfig(model=''))


def test_8b_shape_matches_qwen3_vl_8b():
    model, _ = qwen.build_random_8b('meta', torch.bfloat16)
    text, vision = model.config.text_config, model.config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads,
            text.num_key_value_heads, text.head_dim, text.intermediate_size,
            text.vocab_size) == (4096, 36, 32, 8, 128, 12288, 151936)
    assert (vision.depth, vision.hidden_size, vision.intermediate_size, vision.num_heads,
            vision.out_hidden_size, list(vision.deepstack_visual_indexes)) == \
        (27, 1152, 4304, 16, 4096, [8, 16, 24])
    params = sum(p.numel() for p in model.parameters())
    assert 8.6e9 < params < 8.9e9  # Qwen3-VL-8B-Instruct: 8.77 B


def test_engine_end_to_end_with_tiny_model(tiny):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(3)]
    engine = RewardEngine(tiny, RewardConfig(model='tiny-random', temperature=0.0,
                                             max_new_tokens=6))
    [result] = engine.score([ProgressQuery('ep0', 4, 'Close the drawer', *frames,
                                           previous_progress=17)])
    assert result.model_id == 'tiny-random' and result.raw_text and result.error is None
    assert result.progress == protocol.parse_answer(result.raw_text, 17).progress
