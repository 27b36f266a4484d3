{
  "targets": [
    {
      "target_name": "nyala_fdpass",
      "sources": ["fdpass.c"],
      "cflags": ["-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
