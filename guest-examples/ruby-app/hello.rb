# A Ruby HTTP function, CGI style (handler = "cgi"): Wisp runs ruby.wasm with
# this script for each request, the request in CGI/1.1 env vars and the body on
# stdin; what the script prints is the response: headers, a blank line, the body.
#
#   /missing   404
#   /stream    five lines, 100 ms apart, each sent as it is printed
#   /json      the request as JSON (require "json" from the bundled stdlib)
#   anything else: "hello from Ruby <version>: METHOD PATH_INFO", then a POST's body

method = ENV.fetch('REQUEST_METHOD', 'GET')
path = ENV.fetch('PATH_INFO', '/')
query = ENV.fetch('QUERY_STRING', '')

case path
when '/missing'
  print "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"
  puts "no such page: #{path}"
when '/stream'
  $stdout.sync = true # every print goes out at once
  print "Content-Type: text/plain\r\n\r\n"
  5.times do |i|
    puts "line #{i + 1} of 5"
    sleep 0.1
  end
when '/json'
  require 'json'
  headers = ENV.select { |name, _| name.start_with?('HTTP_') }
  print "Content-Type: application/json\r\n\r\n"
  puts JSON.generate(method: method, path: path, query: query, headers: headers)
else
  print "Content-Type: text/plain\r\n\r\n"
  puts "hello from Ruby #{RUBY_VERSION}: #{method} #{path}#{query.empty? ? '' : "?#{query}"}"
  if method == 'POST'
    length = ENV['CONTENT_LENGTH'].to_s
    body = length.empty? ? $stdin.read : $stdin.read(length.to_i)
    print body.to_s
  end
end
