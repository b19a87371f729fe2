# A Ruby job task: Wisp runs ruby.wasm with this script once per task of a
# [[job]]. The task learns which one it is from the environment (the Cloud
# Run Jobs names work too) and succeeds by exiting 0.
index = Integer(ENV['WISP_TASK_INDEX'] || ENV['CLOUD_RUN_TASK_INDEX'] || 0)
count = Integer(ENV['WISP_TASK_COUNT'] || ENV['CLOUD_RUN_TASK_COUNT'] || 1)
attempt = Integer(ENV['WISP_TASK_ATTEMPT'] || ENV['CLOUD_RUN_TASK_ATTEMPT'] || 0)
execution = ENV['WISP_EXECUTION'] || ENV['CLOUD_RUN_EXECUTION']

puts "ruby job: task #{index}/#{count} attempt #{attempt} execution #{execution} args=#{ARGV.inspect}"

# This task's share of the work: items index, index + count, index + 2 * count, ...
items = (0...20).select { |item| item % count == index }
puts "ruby job: task #{index} handles items #{items.join(',')}"

# FAIL_UNTIL_ATTEMPT=K makes attempts below K fail (exit 1), to show retries.
if attempt < Integer(ENV.fetch('FAIL_UNTIL_ATTEMPT', '0'))
  warn "ruby job: task #{index} attempt #{attempt} fails on purpose"
  exit 1
end
puts "ruby job: task #{index} done"
