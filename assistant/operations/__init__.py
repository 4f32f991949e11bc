"""Running Madoguchi: ``config`` (settings), ``cli`` (the ``madoguchi`` command),
``launcher`` and ``supervisor`` (``madoguchi serve``), ``logs``, ``keys`` (the secret
key), ``files`` (permissions under MADOGUCHI_HOME) and ``retention`` (the purge job)."""
