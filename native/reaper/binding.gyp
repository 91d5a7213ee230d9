{
  "targets": [
    {
      "target_name": "reaper",
      "sources": ["reaper.c"]
    }
  ]
}
