"""The mutable side of Alphabet Events, beside the immutable facts: read models fed from the
notification log (with tracking), and the personal data and sessions that must be erasable."""
