# Pushes jobs with the real Sidekiq client (Debian's ruby-sidekiq) for redline's tests.
# usage: ruby sidekiq_push.rb PORT QUEUE COUNT [AT_SECONDS_FROM_NOW|-] [SLOW_SECONDS]
#   SLOW_SECONDS: push RedlineSlowJob (sidekiq_jobs.rb), which a real server runs for that long.
require "sidekiq"
port, queue, count, at, slow = ARGV
Sidekiq.configure_client { |c| c.redis = { url: "redis://127.0.0.1:#{port}/0" } }
count.to_i.times do |i|
  job = { "queue" => queue, "class" => "RedlineTestJob", "args" => [i] }
  job = job.merge("class" => "RedlineSlowJob", "args" => [slow.to_f]) if slow
  job["at"] = Time.now.to_f + at.to_f if at && at != "-"
  Sidekiq::Client.push(job)
end
puts "ok"
