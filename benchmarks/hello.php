<?php
// php-fpm's hello for benchmarks/scenarios.py: the same 13 bytes as apps.py's /hello.
header('Content-Type: text/plain');
echo 'Hello, World!';
