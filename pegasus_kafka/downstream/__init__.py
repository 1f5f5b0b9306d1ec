"""For enterprise applications: consume scan samples and mined exceptions.

Delivery is at least once. :meth:`~ExceptionStream.poll` returns records and
:meth:`~ExceptionStream.commit` records them as processed in the consumer
group; call it after processing. A consumer that stops between the two gets
the uncommitted records again on restart.

Every ring's applications publish each exception under the same id, so a
topic holds several copies of it. :class:`ExceptionStream` keeps the first
copy of each id and drops the rest (within a process, over the last
``remember`` ids of each partition), which is what makes a downstream
application see each exception once and keep receiving while any ring is
down. See ``docs/aas.md``.
"""

from pegasus_kafka.downstream.exceptions import ExceptionStream
from pegasus_kafka.downstream.samples import Sample, SampleStream
from pegasus_kafka.schema import plain

__all__ = ["ExceptionStream", "Sample", "SampleStream", "plain"]
