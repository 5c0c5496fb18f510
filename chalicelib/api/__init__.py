"""HTTP in, HTTP out: one Chalice blueprint per resource family; rules live in chalicelib.domain."""
