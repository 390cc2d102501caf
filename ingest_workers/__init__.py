"""RTMP/SRT ingest hooks, FFmpeg supervision, the HLS ladder, origin and CDN config."""
