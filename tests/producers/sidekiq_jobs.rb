# Job classes a real Sidekiq server runs in redline's tests:
#   REDIS_URL=redis://127.0.0.1:PORT/0 [SIDEKIQ_NS=ns] sidekiq -r ./sidekiq_jobs.rb -q QUEUE -c 1
require "sidekiq"

if (ns = ENV["SIDEKIQ_NS"])
  Sidekiq.configure_server { |c| c.redis = { url: ENV["REDIS_URL"], namespace: ns } }
  Sidekiq.configure_client { |c| c.redis = { url: ENV["REDIS_URL"], namespace: ns } }
end

# Sleeps for its argument, in seconds: a long-running job.
class RedlineSlowJob
  include Sidekiq::Worker

  def perform(seconds)
    sleep seconds.to_f
  end
end

# Succeeds at once.
class RedlineTestJob
  include Sidekiq::Worker

  def perform(_i); end
end

# Fails; Sidekiq puts it in the retry set.
class RedlineFailJob
  include Sidekiq::Worker
  sidekiq_options retry: 3

  def perform(i)
    raise "job #{i} fails on purpose"
  end
end
