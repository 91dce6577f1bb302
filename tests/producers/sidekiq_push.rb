# Pushes jobs with the real Sidekiq client (Debian's ruby-sidekiq) for redline's tests.
# usage: ruby sidekiq_push.rb PORT QUEUE COUNT [AT_SECONDS_FROM_NOW|-] [SLOW_SECONDS|-] [CLASS]
#   SLOW_SECONDS: push RedlineSlowJob (sidekiq_jobs.rb), which a real server runs for that long.
#   CLASS: the job class (default RedlineTestJob; RedlineFailJob raises).
#   SIDEKIQ_NS: a namespace (redis-namespace), as `Sidekiq.redis = { namespace: ... }` sets.
require "sidekiq"
port, queue, count, at, slow, klass = ARGV
ns = ENV["SIDEKIQ_NS"]
Sidekiq.configure_client do |c|
  c.redis = { url: "redis://127.0.0.1:#{port}/0" }.merge(ns ? { namespace: ns } : {})
end
count.to_i.times do |i|
  job = { "queue" => queue, "class" => klass || "RedlineTestJob", "args" => [i] }
  job = job.merge("class" => "RedlineSlowJob", "args" => [slow.to_f]) if slow && slow != "-"
  job["at"] = Time.now.to_f + at.to_f if at && at != "-"
  Sidekiq::Client.push(job)
end
puts "ok"
