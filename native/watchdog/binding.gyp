{
  "targets": [
    {
      "target_name": "watchdog",
      "sources": ["watchdog.c"]
    }
  ]
}
