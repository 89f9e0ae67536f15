"""End-to-end: the platform's data plane run on 127.0.0.1 from exactly what the program declares."""
