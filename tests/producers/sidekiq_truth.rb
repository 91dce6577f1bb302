# Prints what Sidekiq's own API says about a queue and the server, as JSON.
# usage: [SIDEKIQ_NS=ns] ruby sidekiq_truth.rb PORT QUEUE
require "json"
require "sidekiq"
require "sidekiq/api"
port, queue = ARGV
ns = ENV["SIDEKIQ_NS"]
Sidekiq.configure_client do |c|
  c.redis = { url: "redis://127.0.0.1:#{port}/0" }.merge(ns ? { namespace: ns } : {})
end
q = Sidekiq::Queue.new(queue)
stats = Sidekiq::Stats.new
puts JSON.generate(
  "size" => q.size, "latency" => q.latency, "now" => Time.now.to_f,
  "processed" => stats.processed, "failed" => stats.failed,
  "retry" => Sidekiq::RetrySet.new.size, "scheduled" => Sidekiq::ScheduledSet.new.size,
  "dead" => Sidekiq::DeadSet.new.size, "busy" => Sidekiq::Workers.new.size
)
