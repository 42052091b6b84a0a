"""fastnn.state: state_dict / load_state_dict with torch's nn.Sequential names."""
import numpy as np
import pytest

import fastnn as nn
from fastnn.state import StateDictError


def bn_net(seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNormalization(0.9), nn.ChannelwiseScaling(5),
                         nn.ReLU(), nn.Sequential(nn.Linear(5, 4), nn.Tanh()),
                         nn.Linear(4, 3))


def test_keys_follow_torch_sequential_names_and_layouts():
    net = bn_net()
    net.forward(np.ones((4, 6), np.float32))  # creates the moving statistics
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.running_mean", "1.running_var",
                        "2.weight", "2.bias", "4.0.weight", "4.0.bias", "5.weight", "5.bias"]
    assert sd["0.weight"].shape == (5, 6)  # (out, in), like torch
    np.testing.assert_array_equal(sd["0.weight"], net.modules[0].W)
    np.testing.assert_array_equal(sd["4.0.bias"], net.modules[4].modules[0].b)
    np.testing.assert_array_equal(sd["1.running_var"], net.modules[1].moving_variance)


def test_state_dict_is_a_copy():
    net = bn_net()
    sd = net.state_dict()
    sd["0.weight"][...] = 7
    assert not np.any(net.modules[0].W == 7)


def test_round_trip_into_a_fresh_net_copies_into_the_flat_buffers():
    src = bn_net(seed=1)
    x = np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)
    src.forward(x)
    dst = bn_net(seed=2)
    flat = dst.flatten_parameters().params
    w_view = dst.modules[0].W
    assert dst.load_state_dict(src.state_dict()) == ([], [])
    assert dst.modules[0].W is w_view  # copied into, not rebound
    assert np.shares_memory(dst.modules[0].W, flat)
    src.evaluate(), dst.evaluate()
    np.testing.assert_array_equal(dst.forward(x), src.forward(x))


def test_lazy_moving_statistics_are_created_from_the_dict():
    src = bn_net()
    src.forward(np.ones((4, 6), np.float32))
    dst = bn_net()
    assert dst.modules[1].moving_mean is None
    assert "1.running_mean" not in dst.state_dict()
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst.modules[1].moving_mean, src.modules[1].moving_mean)
    # and a dict without them is not missing anything for a fresh net
    fresh = bn_net()
    partial = {k: v for k, v in src.state_dict().items() if "running" not in k}
    assert fresh.load_state_dict(partial) == ([], [])


def test_errors_list_missing_unexpected_and_wrong_shape_keys_and_copy_nothing():
    net = bn_net()
    before = net.modules[5].W.copy()
    sd = net.state_dict()
    sd.pop("0.bias")
    sd["9.weight"] = np.zeros(3)
    sd["4.0.weight"] = np.zeros((2, 2))
    sd["5.weight"] = before + 1
    with pytest.raises(StateDictError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "missing keys: 0.bias" in msg
    assert "unexpected keys: 9.weight" in msg
    assert "4.0.weight: got (2, 2), expected (4, 5)" in msg
    np.testing.assert_array_equal(net.modules[5].W, before)


def test_non_strict_reports_skipped_keys_but_still_rejects_wrong_shapes():
    net = bn_net()
    sd = net.state_dict()
    sd.pop("0.bias")
    sd["extra.weight"] = np.zeros(1)
    sd["5.bias"] = sd["5.bias"] + 1
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra.weight"]
    np.testing.assert_array_equal(net.modules[5].b, sd["5.bias"])
    sd["5.bias"] = np.zeros(7)
    with pytest.raises(StateDictError, match="5.bias"):
        net.load_state_dict(sd, strict=False)


def test_dtype_is_cast_and_torch_buffer_num_batches_tracked_is_ignored():
    net = nn.Sequential(nn.Linear(3, 2)).double()
    sd = {"0.weight": np.ones((2, 3), np.float32), "0.bias": np.zeros(2, np.float32),
          "1.num_batches_tracked": np.array(3)}
    net.load_state_dict(sd)
    assert net.modules[0].W.dtype == np.float64
    np.testing.assert_array_equal(net.modules[0].W, 1.0)


def test_leaf_module_has_bare_keys():
    lin = nn.Linear(2, 3)
    assert list(lin.state_dict()) == ["weight", "bias"]
