"""Builds the compiled kernels: the ring's (pegasus_kafka/ring/_kernels.c, with
the seal in _seal.c and the block coder in _coder.c) and the Avro record check
(pegasus_kafka/_avro.c)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pegasus_kafka.ring._kernels",
            sources=[
                "pegasus_kafka/ring/_kernels.c",
                "pegasus_kafka/ring/_coder.c",
                "pegasus_kafka/ring/_seal.c",
            ],
            depends=["pegasus_kafka/ring/_coder.h"],
            # Bit-exact floating point: no fused multiply-adds, no fast math.
            extra_compile_args=["-O2", "-ffp-contract=off"],
            libraries=["dl"],
        ),
        Extension(
            "pegasus_kafka._avro",
            sources=["pegasus_kafka/_avro.c"],
            extra_compile_args=["-O2"],
        ),
    ]
)
