# Job classes a real Sidekiq server runs in redline's tests:
#   REDIS_URL=redis://127.0.0.1:PORT/0 sidekiq -r ./sidekiq_jobs.rb -q QUEUE -c 1
require "sidekiq"

# Sleeps for its argument, in seconds: a long-running job.
class RedlineSlowJob
  include Sidekiq::Worker

  def perform(seconds)
    sleep seconds.to_f
  end
end
