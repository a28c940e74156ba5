"""Reading mail: headers, charsets, bodies. Pure functions, no Django, no network."""
