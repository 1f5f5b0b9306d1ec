"""Builds the ring's compiled kernels (pegasus_kafka/ring/_kernels.c)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pegasus_kafka.ring._kernels",
            sources=["pegasus_kafka/ring/_kernels.c"],
            # Bit-exact floating point: no fused multiply-adds, no fast math.
            extra_compile_args=["-O2", "-ffp-contract=off"],
            libraries=["dl"],
        )
    ]
)
