"""Tiny seeded native-layout datasets for the dataset, report and training tests: the shared
factory :func:`pipeline.dataset.synthetic.make_dataset` (also used by the benchmarks), at its
test defaults (two AOIs, 32 px patches, known Sentinel values)."""

from pipeline.dataset.synthetic import DEFAULT_AOIS, SyntheticAoi, make_dataset, s2_dn

AoiFixture = SyntheticAoi

__all__ = ["DEFAULT_AOIS", "AoiFixture", "make_dataset", "s2_dn"]
