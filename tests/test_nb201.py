import itertools, pytest
from trustnas_nb.ops import NB201_PRIMITIVES
from trustnas_nb.genotypes import parse_genotype, to_nb201_string
from trustnas_nb.nb201 import (N_ARCHS, all_archs, arch_index, arch_to_genotype, arch_to_str, genotype_to_arch, index_to_arch,
                               isomorphism_classes, isomorphism_key, n_live_convs, representative, sample_archs, str_to_arch,
                               unique_archs, nb201_network)

def test_every_architecture_round_trips_string_index_genotype():
    archs = all_archs()
    assert len(archs) == len(set(archs)) == N_ARCHS == 15625
    for i, s in enumerate(archs):
        o = str_to_arch(s)
        assert arch_index(s) == arch_index(o) == i and index_to_arch(i) == o and arch_to_str(o) == s
        g = arch_to_genotype(s)
        assert genotype_to_arch(g) == o and to_nb201_string(g) == s

def test_isomorphism_classes_number_6466_and_partition_the_space():
    cls = isomorphism_classes()
    assert len(cls) == len(unique_archs()) == 6466
    flat = sorted(i for c in cls for i in c)
    assert flat == list(range(N_ARCHS))
    assert len(isomorphism_classes(strict=True)) == 5390          # full zero algebra merges more

def test_isomorphism_rule_on_hand_built_cells():
    out_is_input = ['|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|',
                    '|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|',      # dead branch: any op on 0→1
                    '|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|']
    assert len({isomorphism_key(s) for s in out_is_input}) == 1
    # the benchmark's rule keeps zero terms in sums ('#+#+#+(0)@conv' vs '#+#+(0)@conv'); the strict algebra drops them
    a = '|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|'
    b = '|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|'
    assert isomorphism_key(a) != isomorphism_key(b)
    assert isomorphism_key(a, strict=True) == isomorphism_key(b, strict=True) == '(0)@nor_conv_3x3'
    # sums commute: node 1 = node 0 (skip), so conv(0)+pool(1) and pool(0)+conv(1) are one network
    c = '|skip_connect~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|'
    d = '|skip_connect~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|'
    assert isomorphism_key(c) == isomorphism_key(d) and representative(c) == representative(d)
    assert isomorphism_key('|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|') != \
           isomorphism_key('|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|skip_connect~2|')

def test_bad_input_is_rejected_with_clear_errors():
    with pytest.raises(ValueError, match='unknown NAS-Bench-201 operation'): arch_to_str(['conv'] * 6)
    with pytest.raises(ValueError, match='6 operations'): arch_to_str(['none'] * 5)
    with pytest.raises(ValueError, match=r'\[0, 15624\]'): index_to_arch(15625)
    with pytest.raises(ValueError, match='3 nodes'): str_to_arch('|none~0|+|none~0|none~1|')
    with pytest.raises(ValueError, match='malformed'): str_to_arch('|none~0|+|none~0|')
    with pytest.raises(ValueError, match='unknown NAS-Bench-201 operation'): str_to_arch('|sep_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|')
    with pytest.raises(ValueError, match='n must be'): sample_archs(0)

def test_stratified_sample_is_reproducible_distinct_and_covers_every_stratum():
    a, b = sample_archs(40, seed=3), sample_archs(40, seed=3)
    assert a == b and len(set(a)) == 40 and a != sample_archs(40, seed=4)
    uniq = set(unique_archs())
    assert set(a) <= uniq
    strata = {n_live_convs(s) for s in uniq}
    assert {n_live_convs(s) for s in a} == strata == set(range(7))
    assert n_live_convs('|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|') == 0   # conv on a dead branch
    assert n_live_convs(['nor_conv_3x3'] * 6) == 6

def test_network_parameter_range_matches_the_benchmark():
    from trustnas_nb.evalnet import count_parameters
    assert round(count_parameters(nb201_network(['none'] * 6)) / 1e6, 3) == 0.073
    assert round(count_parameters(nb201_network(['nor_conv_3x3'] * 6)) / 1e6, 2) == 1.53
