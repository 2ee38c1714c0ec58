"""Tiny seeded native-layout datasets for the dataset, report and training tests: the shared
factory :func:`tests.synthetic_dataset.make_dataset` (also used by the benchmarks), at its
test defaults (two AOIs, 32 px patches, known Sentinel values)."""

from tests.synthetic_dataset import DEFAULT_AOIS, SyntheticAoi, make_dataset, s2_dn

AoiFixture = SyntheticAoi

__all__ = ["DEFAULT_AOIS", "AoiFixture", "make_dataset", "s2_dn"]
